"""The container or pod a network namespace (or a process) belongs to.

Named from the container runtime's own state on disk (collect/runtimes.py);
when that state is not readable, only what the cgroup path tells is known
(the runtime and a short id).

>>> w = Workload("podman", "26870dd9a74d", name="web1", image="localhost/bb:1")
>>> w.label(), w.matches_container("web1"), w.matches_container("26870dd9a74d")
('podman:web1', True, True)
>>> p = Workload("containerd", "5d1f3c2b9a8e", pod_namespace="shop", pod_name="cart-7d9f",
...              containers=("cart", "envoy"))
>>> p.label(), p.pod, p.matches_pod("shop/cart-7d9f"), p.matches_container("envoy")
('pod:shop/cart-7d9f', 'shop/cart-7d9f', True, True)
>>> Workload("docker", "3f4e8a2b9c1d").label()
'docker:3f4e8a2b9c1d'
"""

from __future__ import annotations

from dataclasses import dataclass

#: A container id given on the command line matches from this many hex
#: digits on (``docker ps`` shows 12).
MIN_ID_PREFIX = 6


@dataclass(frozen=True)
class Workload:
    runtime: str  # docker, podman, containerd, crio, lxc, machine, container
    id: str  # short id (12 hex digits), or the name for lxc and machines
    name: str | None = None  # container name; in a pod, the container's name
    image: str | None = None
    pod_namespace: str | None = None  # Kubernetes namespace of the pod
    pod_name: str | None = None
    pod_uid: str | None = None
    containers: tuple[str, ...] = ()  # a pod's containers sharing this namespace

    @property
    def pod(self) -> str | None:
        """``NAMESPACE/NAME`` of the Kubernetes pod, when there is one."""
        if self.pod_name is None:
            return None
        return f"{self.pod_namespace or 'default'}/{self.pod_name}"

    def label(self) -> str:
        """Short text for tables and the exporter's ``container`` label."""
        if self.pod is not None:
            return f"pod:{self.pod}" + (f"/{self.name}" if self.name else "")
        if self.pod_uid is not None:  # a pod whose runtime state was not found
            inner = self.name or self.id
            return f"pod:{self.pod_uid}" + (f"/{inner}" if inner else "")
        return f"{self.runtime}:{self.name or self.id}"

    def matches_container(self, text: str) -> bool:
        """``--container``: the name, a container of the pod, or an id prefix."""
        if text in (self.name, *self.containers):
            return True
        return len(text) >= MIN_ID_PREFIX and self.id.startswith(text.lower())

    def matches_pod(self, text: str) -> bool:
        """``--pod NAMESPACE/NAME`` (or ``NAME`` in any namespace)."""
        if self.pod is None:
            return False
        ns, sep, name = text.rpartition("/")
        return self.pod_name == name and (not sep or (self.pod_namespace or "default") == ns)

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "id": self.id, "name": self.name, "image": self.image,
                "pod": None if self.pod is None else
                {"namespace": self.pod_namespace or "default", "name": self.pod_name,
                 "uid": self.pod_uid},
                "containers": list(self.containers)}
