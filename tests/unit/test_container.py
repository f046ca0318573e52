"""container_from_cgroup over /proc/PID/cgroup contents as runtimes write them."""

import pytest

from tcplinger.collect.container import container_from_cgroup

ID = "3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"
ID2 = "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66"
UID = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
UID_ = UID.replace("-", "_")

V1_DOCKER = "\n".join(
    [f"{n}:{c}:/docker/{ID}" for n, c in (
        (12, "pids"), (11, "hugetlb"), (10, "net_cls,net_prio"), (9, "perf_event"),
        (8, "blkio"), (7, "memory"), (6, "devices"), (5, "freezer"), (4, "rdma"),
        (3, "cpuset"), (2, "cpu,cpuacct"))]
    + [f"1:name=systemd:/docker/{ID}", "0::/system.slice/containerd.service"]) + "\n"

CASES = [
    # docker
    ("docker v2 systemd driver", f"0::/system.slice/docker-{ID}.scope\n", f"docker:{ID[:12]}"),
    ("docker v2 with systemd inside the container",
     f"0::/system.slice/docker-{ID}.scope/init.scope\n", f"docker:{ID[:12]}"),
    ("docker v2 cgroupfs driver", f"0::/docker/{ID}\n", f"docker:{ID[:12]}"),
    ("docker v1 cgroupfs driver, full file", V1_DOCKER, f"docker:{ID[:12]}"),
    ("docker in docker: innermost wins", f"0::/docker/{ID2}/docker/{ID}\n", f"docker:{ID[:12]}"),
    ("hybrid: v1 lines at / but the unified line names docker",
     f"1:name=systemd:/\n0::/system.slice/docker-{ID}.scope\n", f"docker:{ID[:12]}"),
    ("docker daemon itself", "0::/system.slice/docker.service\n", None),
    ("docker- scope without an id", "0::/system.slice/docker-compose@web.scope\n", None),
    # containerd / CRI (Kubernetes)
    ("k8s containerd systemd, burstable",
     f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"cri-containerd-{ID2}.scope\n", f"pod:{UID}/{ID2[:12]}"),
    ("k8s containerd systemd, guaranteed (no QoS slice)",
     f"0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID2}.scope\n",
     f"pod:{UID}/{ID2[:12]}"),
    ("k8s containerd cgroupfs v2, besteffort",
     f"0::/kubepods/besteffort/pod{UID}/{ID2}\n", f"pod:{UID}/{ID2[:12]}"),
    ("k8s cgroupfs guaranteed", f"0::/kubepods/pod{UID}/{ID2}\n", f"pod:{UID}/{ID2[:12]}"),
    ("k8s v1 systemd lines",
     f"11:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"cri-containerd-{ID2}.scope\n1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/"
     f"kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID2}.scope\n0::/\n",
     f"pod:{UID}/{ID2[:12]}"),
    ("k8s pod slice, no container", f"0::/kubepods.slice/kubepods-burstable.slice/"
     f"kubepods-burstable-pod{UID_}.slice\n", f"pod:{UID}"),
    ("k8s via cri-dockerd", f"0::/kubepods.slice/kubepods-pod{UID_}.slice/docker-{ID}.scope\n",
     f"pod:{UID}/{ID[:12]}"),
    ("containerd without k8s", f"0::/system.slice/cri-containerd-{ID2}.scope\n",
     f"containerd:{ID2[:12]}"),
    # cri-o
    ("cri-o in a pod", f"0::/kubepods.slice/kubepods-besteffort.slice/"
     f"kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope\n", f"pod:{UID}/{ID[:12]}"),
    ("cri-o conmon is not the container", f"0::/kubepods.slice/kubepods-besteffort.slice/"
     f"kubepods-besteffort-pod{UID_}.slice/crio-conmon-{ID}.scope\n", f"pod:{UID}"),
    ("cri-o conmon outside a pod", f"0::/system.slice/crio-conmon-{ID}.scope\n", None),
    ("cri-o outside a pod", f"0::/machine.slice/crio-{ID}.scope\n", f"crio:{ID[:12]}"),
    # podman
    ("podman rootless", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/"
     f"libpod-{ID}.scope/container\n", f"podman:{ID[:12]}"),
    ("podman rootful systemd", f"0::/machine.slice/libpod-{ID}.scope\n", f"podman:{ID[:12]}"),
    ("podman cgroupfs driver", f"0::/libpod_parent/libpod-{ID}\n", f"podman:{ID[:12]}"),
    ("podman conmon", f"0::/machine.slice/libpod-conmon-{ID}.scope\n", None),
    # lxc / lxd
    ("lxc v1", "4:memory:/lxc/web01\n1:name=systemd:/lxc/web01\n", "lxc:web01"),
    ("lxc 4 / lxd payload", "0::/lxc.payload.web01/system.slice/nginx.service\n", "lxc:web01"),
    ("lxc monitor", "0::/lxc.monitor.web01\n", None),
    # systemd-nspawn and other machined machines
    ("systemd-nspawn", "0::/machine.slice/machine-debian12.scope/payload/system.slice/x.service\n",
     "machine:debian12"),
    ("libvirt VM (escaped name)", "0::/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt\n",
     "machine:qemu-1-vm1"),
    # generic ids
    ("ECS task", f"0::/ecs/0123456789abcdef0123456789abcdef/{ID}\n", f"container:{ID[:12]}"),
    ("nerdctl cgroupfs driver", f"0::/default/{ID}\n", f"container:{ID[:12]}"),
    # host processes
    ("login session", "0::/user.slice/user-1000.slice/session-3.scope\n", None),
    ("system service", "0::/system.slice/sshd.service\n", None),
    ("init", "0::/init.scope\n", None),
    ("inside a cgroup namespace", "0::/\n", None),
    ("this sandbox (v1, 32-hex job id)",
     "4:memory:/process_api/d1ebe7bcbf38ed723eb1121270e7b016\n0::/\n", None),
    ("empty (kernel thread read after exit)", "", None),
    ("garbage", "no colons here\n", None),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_container_from_cgroup(text, expected):
    assert container_from_cgroup(text) == expected


def test_recorded_cgroup_files():
    """The cgroup files of the recorded /proc tree (see tests/data/proc_pids/README.md)."""
    from pathlib import Path

    tree = Path(__file__).parent.parent / "data" / "proc_pids" / "mixed"
    got = {pid: container_from_cgroup((tree / pid / "cgroup").read_text())
           for pid in ("11552", "11553", "11602")}
    assert got == {"11552": "docker:3f4e8a2b9c1d", "11553": f"pod:{UID}/{ID2[:12]}",
                   "11602": None}
