"""Name containers and pods from the container runtimes' own state on disk.

The cgroup path of a process gives the runtime and the container id
(collect/container.py); the runtime's state files give the rest: the
container's name and image and, for Kubernetes, the pod's namespace and
name and the containers that share the pod's network namespace.  No API
socket is asked: the files are read, under ``root`` (``/`` on a live host, a
recorded tree in tests: tests/data/runtimes/).

Where each runtime keeps it (rootful installs):

- **docker** (and Kubernetes through cri-dockerd):
  ``var/lib/docker/containers/<id>/config.v2.json``: ``Name`` ("/web"),
  ``Config.Image``, ``Config.Labels`` (``io.kubernetes.pod.name``,
  ``io.kubernetes.pod.namespace``, ``io.kubernetes.pod.uid``,
  ``io.kubernetes.container.name``, ``io.kubernetes.docker.type``
  podsandbox/container, ``io.kubernetes.sandbox.id``).
- **containerd** (CRI plugin, nerdctl): the shim's OCI bundle
  ``run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json``,
  whose ``annotations`` carry ``io.kubernetes.cri.container-type``
  (sandbox/container), ``io.kubernetes.cri.sandbox-id``, ``-sandbox-name``,
  ``-sandbox-namespace``, ``-sandbox-uid``, ``-container-name``,
  ``-image-name`` (containerd pkg/cri/annotations); nerdctl writes
  ``nerdctl/name``.
- **CRI-O and podman** share containers/storage: the bundle
  ``userdata/config.json`` under ``run/containers/storage/overlay-containers/<id>/``
  (CRI-O's run root) or ``var/lib/containers/storage/overlay-containers/<id>/``
  (podman's graph root).  CRI-O's annotations: ``io.kubernetes.pod.name``,
  ``-.namespace``, ``-.uid``, ``io.kubernetes.container.name``,
  ``io.kubernetes.cri-o.ContainerType``, ``-.SandboxID``, ``-.ImageName``.
  Podman's bundle only says ``io.container.manager: libpod``; its names
  and image are in ``overlay-containers/containers.json`` (``names``, and
  ``metadata``, a JSON string with ``image-name``).
- **lxc** and **systemd-nspawn**: the cgroup path holds the name already.

Rootless podman keeps its storage under the user's home; it is not read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..model.workload import Workload
from .container import ID_CHARS, CgroupRef

DOCKER = "var/lib/docker/containers"
CONTAINERD_TASKS = "run/containerd/io.containerd.runtime.v2.task"
STORAGE = ("run/containers/storage/overlay-containers",
           "var/lib/containers/storage/overlay-containers")

# CRI-O, and dockershim/cri-dockerd labels (kubelet pkg/kubelet/types/labels.go)
K8S_POD_NAME = "io.kubernetes.pod.name"
K8S_POD_NAMESPACE = "io.kubernetes.pod.namespace"
K8S_POD_UID = "io.kubernetes.pod.uid"
K8S_CONTAINER = "io.kubernetes.container.name"
# containerd's CRI plugin
CRI_TYPE = "io.kubernetes.cri.container-type"
CRI_SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
CRI_POD_NAME = "io.kubernetes.cri.sandbox-name"
CRI_POD_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
CRI_POD_UID = "io.kubernetes.cri.sandbox-uid"
CRI_CONTAINER = "io.kubernetes.cri.container-name"
CRI_IMAGE = "io.kubernetes.cri.image-name"
CRIO_TYPE = "io.kubernetes.cri-o.ContainerType"
CRIO_SANDBOX_ID = "io.kubernetes.cri-o.SandboxID"
CRIO_IMAGE = "io.kubernetes.cri-o.ImageName"


# ---- pure: one runtime's record -> Workload fields -------------------------------

def from_cri_annotations(ann: dict) -> dict:
    """Fields from an OCI bundle's annotations (containerd CRI or CRI-O).

    >>> from_cri_annotations({"io.kubernetes.cri.container-type": "sandbox",
    ...     "io.kubernetes.cri.sandbox-name": "cart-7d9f",
    ...     "io.kubernetes.cri.sandbox-namespace": "shop",
    ...     "io.kubernetes.cri.sandbox-uid": "1b2c"})
    {'pod_name': 'cart-7d9f', 'pod_namespace': 'shop', 'pod_uid': '1b2c', 'sandbox': True}
    >>> from_cri_annotations({"io.kubernetes.cri-o.ContainerType": "container",
    ...     "io.kubernetes.pod.name": "cart-7d9f", "io.kubernetes.pod.namespace": "shop",
    ...     "io.kubernetes.container.name": "cart",
    ...     "io.kubernetes.cri-o.ImageName": "registry.example/cart:2"})["name"]
    'cart'
    """
    out = {}
    for key, names in (("pod_name", (CRI_POD_NAME, K8S_POD_NAME)),
                       ("pod_namespace", (CRI_POD_NAMESPACE, K8S_POD_NAMESPACE)),
                       ("pod_uid", (CRI_POD_UID, K8S_POD_UID)),
                       ("name", (CRI_CONTAINER, K8S_CONTAINER, "nerdctl/name")),
                       ("image", (CRI_IMAGE, CRIO_IMAGE))):
        for n in names:
            if ann.get(n):
                out[key] = ann[n]
                break
    kind = ann.get(CRI_TYPE) or ann.get(CRIO_TYPE)
    if kind == "sandbox" or out.get("name") == "POD":
        out["sandbox"] = True
        out.pop("name", None)  # the pause container: "POD", not a container of the app
    return out


def from_docker_config(doc: dict) -> dict:
    """Fields from docker's ``config.v2.json``.

    >>> from_docker_config({"Name": "/web", "Config": {"Image": "nginx:1.25", "Labels": {}}})
    {'name': 'web', 'image': 'nginx:1.25'}
    """
    config = doc.get("Config") or {}
    labels = config.get("Labels") or {}
    out = {"name": (doc.get("Name") or "").lstrip("/") or None, "image": config.get("Image")}
    if labels.get(K8S_POD_NAME):
        out.update(from_cri_annotations(labels))
        if labels.get("io.kubernetes.docker.type") == "podsandbox":
            out["sandbox"] = True
            out.pop("name", None)
    return {k: v for k, v in out.items() if v is not None}


def from_storage_entry(entry: dict) -> dict:
    """Fields from one entry of containers/storage's ``containers.json``.

    >>> from_storage_entry({"id": "2687", "names": ["web1"],
    ...     "metadata": '{"image-name":"localhost/bb:1","name":"web1"}'})
    {'name': 'web1', 'image': 'localhost/bb:1'}
    """
    try:
        meta = json.loads(entry.get("metadata") or "{}")
    except ValueError:
        meta = {}
    names = entry.get("names") or []
    out = {"name": names[0] if names else meta.get("name"), "image": meta.get("image-name")}
    return {k: v for k, v in out.items() if v}


# ---- reading the state --------------------------------------------------------------

class Resolver:
    """``workload(CgroupRef) -> Workload`` reading the runtimes' state under
    ``root``; every file is read at most once per resolver (one discovery)."""

    def __init__(self, root: Path = Path("/")):
        self.root = Path(root)
        self._json: dict[Path, object] = {}

    def workload(self, ref: CgroupRef) -> Workload:
        if ref.id is None or ref.kind in ("lxc", "machine"):
            if ref.id is None:  # a pod's cgroup without a container in it
                return Workload("pod", "", pod_uid=ref.pod_uid)
            return Workload(ref.kind, ref.id, name=ref.id)
        readers = {"docker": (self._docker,), "containerd": (self._containerd,),
                   "crio": (self._storage,), "podman": (self._storage,)}.get(
            ref.kind, (self._containerd, self._storage, self._docker))
        short = ref.id[:ID_CHARS]
        for reader in readers:
            found = reader(ref.id)
            if found is not None:
                runtime, fields, containers = found
                fields.pop("sandbox", None)
                fields.setdefault("pod_uid", ref.pod_uid)
                return Workload(runtime, short, containers=containers, **fields)
        return Workload(ref.kind or "container", short, pod_uid=ref.pod_uid)

    def _load(self, path: Path):
        if path not in self._json:
            try:
                with open(path, encoding="utf-8") as f:
                    self._json[path] = json.load(f)
            except (OSError, ValueError):
                self._json[path] = None
        return self._json[path]

    def _docker(self, cid: str):
        doc = self._load(self.root / DOCKER / cid / "config.v2.json")
        if not isinstance(doc, dict):
            return None
        fields = from_docker_config(doc)
        containers = ()
        if fields.get("sandbox"):
            containers = self._members(
                (self.root / DOCKER).glob("*/config.v2.json"),
                lambda d: ((d.get("Config") or {}).get("Labels") or {}),
                "io.kubernetes.sandbox.id", cid, lambda labels: labels.get(K8S_CONTAINER))
        return "docker", fields, containers

    def _containerd(self, cid: str):
        tasks = self.root / CONTAINERD_TASKS
        try:
            spaces = sorted(os.listdir(tasks))
        except OSError:
            return None
        for space in spaces:
            doc = self._load(tasks / space / cid / "config.json")
            if isinstance(doc, dict):
                fields = from_cri_annotations(doc.get("annotations") or {})
                containers = ()
                if fields.get("sandbox"):
                    containers = self._members(
                        (tasks / space).glob("*/config.json"),
                        lambda d: d.get("annotations") or {}, CRI_SANDBOX_ID, cid,
                        lambda ann: ann.get(CRI_CONTAINER))
                return "containerd", fields, containers
        return None

    def _storage(self, cid: str):
        for base in STORAGE:
            doc = self._load(self.root / base / cid / "userdata" / "config.json")
            if not isinstance(doc, dict):
                continue
            ann = doc.get("annotations") or {}
            fields = from_cri_annotations(ann)
            libpod = ann.get("io.container.manager") == "libpod"
            entry = self._storage_entry(cid)
            if entry is not None and (libpod or "name" not in fields):
                fields = {**from_storage_entry(entry), **fields}
            containers = ()
            if fields.get("sandbox"):
                containers = self._members(
                    (self.root / base).glob("*/userdata/config.json"),
                    lambda d: d.get("annotations") or {}, CRIO_SANDBOX_ID, cid,
                    lambda a: a.get(K8S_CONTAINER))
            return ("podman" if libpod else "crio"), fields, containers
        entry = self._storage_entry(cid)  # a stopped bundle: the name is still known
        if entry is not None:
            return "podman", from_storage_entry(entry), ()
        return None

    def _storage_entry(self, cid: str) -> dict | None:
        for base in reversed(STORAGE):  # the graph root holds containers.json
            doc = self._load(self.root / base / "containers.json")
            if isinstance(doc, list):
                for entry in doc:
                    if isinstance(entry, dict) and entry.get("id") == cid:
                        return entry
        return None

    def _members(self, paths, annotations, key: str, sandbox: str, name) -> tuple[str, ...]:
        """Names of the containers whose ``key`` annotation is ``sandbox``."""
        out = []
        for path in sorted(paths):
            doc = self._load(path)
            if not isinstance(doc, dict):
                continue
            ann = annotations(doc)
            if ann.get(key) == sandbox and not from_cri_annotations(ann).get("sandbox"):
                n = name(ann)
                if n and n != "POD":
                    out.append(n)
        return tuple(sorted(set(out)))
