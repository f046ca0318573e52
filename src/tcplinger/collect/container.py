r"""Name the container or pod a process runs in, from its /proc/PID/cgroup.

The file has one line per hierarchy, ``hierarchy-ID:controllers:path``
(cgroups(7)).  Under cgroup v2 there is a single ``0::/path`` line; under v1
there is one line per controller, and hybrid hosts show both.  Container
runtimes put each container in a cgroup whose path names it, so the path is
enough to name the container without asking any runtime's API.

Patterns recognised, first the runtime's own cgroup, in systemd-driver form
(``<runtime>-<id>.scope``) and cgroupfs-driver form (``/<runtime>/<id>``):

docker, systemd driver and cgroupfs driver:

>>> container_from_cgroup("0::/system.slice/docker-"
...     "3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f.scope")
'docker:3f4e8a2b9c1d'
>>> container_from_cgroup("12:memory:/docker/"
...     "3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f")
'docker:3f4e8a2b9c1d'

containerd outside Kubernetes (nerdctl with the systemd driver):

>>> container_from_cgroup("0::/system.slice/cri-containerd-"
...     "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66.scope")
'containerd:aa11bb22cc33'

podman (libpod); its conmon monitor is not the container:

>>> container_from_cgroup("0::/user.slice/user-1000.slice/user@1000.service/"
...     "user.slice/libpod-"
...     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")
'podman:0123456789ab'
>>> container_from_cgroup("0::/machine.slice/libpod-conmon-"
...     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope") is None
True

Kubernetes pods win over the runtime: the pod UID is what an SRE can look up
(``kubectl get pods -A -o custom-columns=UID:.metadata.uid,NAME:.metadata.name``).
The systemd driver writes the UID with ``_`` for ``-`` (systemd slice names
use ``-`` as the hierarchy separator, systemd.slice(5)); it is turned back:

>>> container_from_cgroup("0::/kubepods.slice/kubepods-burstable.slice/"
...     "kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/"
...     "cri-containerd-"
...     "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66.scope")
'pod:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/aa11bb22cc33'
>>> container_from_cgroup("0::/kubepods.slice/kubepods-besteffort.slice/"
...     "kubepods-besteffort-pod0a0b0c0d_1111_2222_3333_444455556666.slice/crio-"
...     "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100.scope")
'pod:0a0b0c0d-1111-2222-3333-444455556666/ffeeddccbbaa'
>>> container_from_cgroup("11:pids:/kubepods/burstable/"
...     "pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/"
...     "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66")
'pod:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/aa11bb22cc33'

cri-o outside a pod slice, and its conmon (excluded):

>>> container_from_cgroup("0::/machine.slice/crio-"
...     "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100.scope")
'crio:ffeeddccbbaa'
>>> container_from_cgroup("0::/kubepods.slice/kubepods-besteffort.slice/"
...     "kubepods-besteffort-pod0a0b0c0d_1111_2222_3333_444455556666.slice/"
...     "crio-conmon-"
...     "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100.scope")
'pod:0a0b0c0d-1111-2222-3333-444455556666'

LXC (v1 ``/lxc/<name>``, LXC 4+/LXD ``/lxc.payload.<name>``; the
``lxc.monitor.<name>`` cgroup holds the monitor, not the container):

>>> container_from_cgroup("4:memory:/lxc/web01")
'lxc:web01'
>>> container_from_cgroup("0::/lxc.payload.web01/system.slice/nginx.service")
'lxc:web01'
>>> container_from_cgroup("0::/lxc.monitor.web01") is None
True

systemd-nspawn and other registered machines (systemd-machined puts every
machine in ``machine-<name>.scope`` with systemd's ``\x2d`` escaping of ``-``,
systemd.unit(5); libvirt VMs live there too, so the label says "machine"):

>>> container_from_cgroup(r"0::/machine.slice/machine-build\x2dbox.scope/payload")
'machine:build-box'

Anything else carrying a 64-hex container id as a path component (ECS,
nerdctl's cgroupfs driver) is named generically; host services are not
containers:

>>> container_from_cgroup("0::/default/"
...     "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66")
'container:aa11bb22cc33'
>>> container_from_cgroup("0::/system.slice/docker.service") is None
True
>>> container_from_cgroup("0::/") is None
True
>>> container_from_cgroup("") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

ID_CHARS = 12  # like `docker ps`: the first 12 hex digits of the id

_HEX = frozenset("0123456789abcdef")

# Runtime scope prefixes (systemd driver) and the label each gets.  Longest
# first so "cri-containerd-" is not read as something shorter.
_SCOPE_PREFIXES = (
    ("cri-containerd-", "containerd"),
    ("docker-", "docker"),
    ("crio-", "crio"),
    ("libpod-", "podman"),
)
# Monitors that share a prefix with the runtime but are not the container:
# crio-conmon-<id>.scope and libpod-conmon-<id>.scope (conmon supervises the
# container from outside it).
_EXCLUDED_PREFIXES = ("crio-conmon-", "libpod-conmon-")
# cgroupfs-driver parents: /<parent>/<64-hex id>
_PARENT_RUNTIMES = {"docker": "docker", "crio": "crio"}


@dataclass(frozen=True)
class CgroupRef:
    """What a cgroup path says: the runtime (``kind``), the container's full
    id (or name, for lxc and machines) and the Kubernetes pod UID.

    >>> ref_from_cgroup("0::/machine.slice/crio-" + "ab" * 32 + ".scope")
    CgroupRef(kind='crio', id='abababababababababababababababababababababababababababababababab', pod_uid=None)
    """

    kind: str | None  # docker, containerd, crio, podman, lxc, machine, container
    id: str | None
    pod_uid: str | None = None

    def label(self) -> str:
        cid = self.id[:ID_CHARS] if self.id and _is_id(self.id) else self.id
        if self.pod_uid is not None:
            return f"pod:{self.pod_uid}/{cid}" if cid else f"pod:{self.pod_uid}"
        return f"{self.kind}:{cid}"


def container_from_cgroup(text: str) -> str | None:
    """Label of the container or pod named by the content of /proc/PID/cgroup.

    The v2 line (``0::``) is looked at first, being the one hierarchy every
    controller shares; then the v1 lines in file order.  Returns None for
    host processes.
    """
    ref = ref_from_cgroup(text)
    return None if ref is None else ref.label()


def ref_from_cgroup(text: str) -> CgroupRef | None:
    """:class:`CgroupRef` for the content of /proc/PID/cgroup (None: host)."""
    lines = text.splitlines()
    unified = [ln for ln in lines if ln.startswith("0::")]
    for line in unified + [ln for ln in lines if not ln.startswith("0::")]:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ref = ref_from_path(parts[2])
        if ref is not None:
            return ref
    return None


def container_from_path(path: str) -> str | None:
    """Label for one cgroup path (the third field of a /proc/PID/cgroup line).

    >>> container_from_path("/kubepods/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901")
    'pod:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901'
    """
    ref = ref_from_path(path)
    return None if ref is None else ref.label()


def ref_from_path(path: str) -> CgroupRef | None:
    pod: str | None = None
    kind: str | None = None  # innermost runtime container wins (nesting)
    cid: str | None = None
    parent = ""
    for comp in path.split("/"):
        if not comp:
            continue
        found = _component(comp, parent)
        parent = comp
        if found is None:
            continue
        if found[0] == "pod":
            pod = found[1]
        else:
            kind, cid = found
    if pod is None and kind is None:
        return None
    return CgroupRef(kind, cid, pod)


def _component(comp: str, parent: str) -> tuple[str, str] | None:
    """(kind, value) when one path component names a pod or a container."""
    if comp.endswith(".slice"):
        # kubepods-pod<uid>.slice, kubepods-burstable-pod<uid>.slice, ...
        stem = comp[: -len(".slice")]
        if stem.startswith("kubepods"):
            i = stem.rfind("-pod")
            if i >= 0:
                return "pod", stem[i + 4:].replace("_", "-")
        return None
    # <runtime>-<id>.scope (systemd driver); podman's cgroupfs driver names
    # the same without .scope (/libpod_parent/libpod-<id>)
    stem = comp[: -len(".scope")] if comp.endswith(".scope") else comp
    if stem.startswith(_EXCLUDED_PREFIXES):
        return None
    for prefix, kind in _SCOPE_PREFIXES:
        if stem.startswith(prefix) and _is_id(stem[len(prefix):]):
            return kind, stem[len(prefix):]
    if comp.endswith(".scope"):
        if stem.startswith("machine-"):
            return "machine", _unescape(stem[len("machine-"):])
        return None
    if comp.startswith("pod") and parent in ("kubepods", "burstable", "besteffort",
                                             "guaranteed"):
        return "pod", comp[3:]
    if comp.startswith("lxc.payload."):
        return "lxc", comp[len("lxc.payload."):]
    if parent == "lxc" and not comp.startswith("lxc."):
        return "lxc", comp
    if _is_id(comp):
        return _PARENT_RUNTIMES.get(parent, "container"), comp
    return None


def _is_id(s: str) -> bool:
    """A full container id: 64 lowercase hex digits (docker, containerd,
    cri-o and podman all use sha256-sized ids)."""
    return len(s) == 64 and _HEX.issuperset(s)


def _unescape(name: str) -> str:
    r"""Undo systemd's unit-name escaping (``\x2d`` -> ``-``), systemd-escape(1).

    >>> _unescape(r"qemu\x2d1\x2dvm")
    'qemu-1-vm'
    """
    if "\\x" not in name:
        return name
    out, i = [], 0
    while i < len(name):
        if name.startswith("\\x", i) and i + 4 <= len(name):
            try:
                out.append(chr(int(name[i + 2:i + 4], 16)))
                i += 4
                continue
            except ValueError:
                pass
        out.append(name[i])
        i += 1
    return "".join(out)
