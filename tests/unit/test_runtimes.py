"""Containers and pods named from recorded runtime state (tests/data/runtimes/node).

The tree holds, laid out as on a node's root file system: a docker
container and a cri-dockerd pod; a containerd CRI pod (sandbox and two
containers, annotations as containerd's CRI plugin writes them); a CRI-O
pod (sandbox and one container); and the podman container recorded from
this machine (``podman import`` + ``podman run``, KERNEL-NOTES recipe).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tcplinger.collect import netns
from tcplinger.collect.container import ref_from_cgroup
from tcplinger.collect.runtimes import Resolver
from tcplinger.model.workload import Workload

DATA = Path(__file__).parent.parent / "data"
NODE = DATA / "runtimes" / "node"
MIXED = DATA / "proc_pids" / "mixed"
PODMAN_ID = "26870dd9a74d1d8eb49109bdd717c7051efb5f5b1315d11cf73a3c0d34773a66"


def resolve(cgroup: str, root: Path = NODE) -> Workload:
    return Resolver(root).workload(ref_from_cgroup(cgroup))


def test_docker_container_by_name_and_image():
    w = resolve("0::/system.slice/docker-"
                "3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f.scope")
    assert w == Workload("docker", "3f4e8a2b9c1d", name="api", image="registry.example/api:1.4")
    assert w.label() == "docker:api"


def test_docker_kubernetes_pod_through_cri_dockerd():
    w = resolve("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a0b0c0d"
                "_1111_2222_3333_444455556666.slice/docker-" + "d0" * 32 + ".scope")
    assert (w.runtime, w.pod, w.name, w.containers) == ("docker", "default/web-5f7c", None,
                                                         ("nginx",))
    assert w.image == "registry.k8s.io/pause:3.9"
    app = resolve("0::/kubepods.slice/docker-" + "d1" * 32 + ".scope")
    assert (app.pod, app.name, app.image) == ("default/web-5f7c", "nginx", "nginx:1.25")


def test_containerd_cri_sandbox_names_the_pod_and_its_containers():
    w = resolve("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e"
                "_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-"
                "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66.scope")
    assert w == Workload("containerd", "aa11bb22cc33", pod_namespace="shop",
                         pod_name="cart-7d9f", pod_uid="1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
                         containers=("cart", "envoy"))
    assert w.label() == "pod:shop/cart-7d9f"
    assert w.matches_pod("shop/cart-7d9f") and w.matches_pod("cart-7d9f")
    assert not w.matches_pod("other/cart-7d9f")
    assert w.matches_container("envoy") and not w.matches_container("nginx")
    one = resolve("0::/kubepods.slice/cri-containerd-" + "bb" * 32 + ".scope")
    assert (one.name, one.image, one.label()) == ("cart", "registry.example/shop/cart:2.3",
                                                  "pod:shop/cart-7d9f/cart")


def test_crio_sandbox_and_container():
    sandbox = resolve("0::/kubepods.slice/kubepods-besteffort.slice/crio-"
                      "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100.scope")
    assert (sandbox.runtime, sandbox.pod, sandbox.name, sandbox.containers) == (
        "crio", "payments/ledger-0", None, ("ledger",))
    assert sandbox.pod_uid == "5a5a5a5a-6b6b-7c7c-8d8d-9e9e9e9e9e9e"
    app = resolve("0::/machine.slice/crio-" + "ee" * 32 + ".scope")
    assert (app.name, app.image) == ("ledger", "registry.example/ledger:7")


def test_podman_recorded_from_a_real_container():
    w = resolve(f"9:name=systemd:/libpod_parent/libpod-{PODMAN_ID}")
    assert w == Workload("podman", PODMAN_ID[:12], name="tl-eco-web1",
                         image="localhost/tl-eco-bb:1")
    assert w.matches_container("tl-eco-web1") and w.matches_container(PODMAN_ID[:8])
    assert not w.matches_container("26870")  # too short to be an id


def test_unknown_state_falls_back_to_the_cgroup_label(tmp_path):
    w = resolve("0::/system.slice/docker-" + "ab" * 32 + ".scope", root=tmp_path)
    assert w.label() == "docker:abababababab" and w.name is None
    pod = resolve("11:pids:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/"
                  + "ab" * 32, root=tmp_path)
    assert pod.label() == "pod:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/abababababab"
    assert resolve("0::/lxc.payload.web01/x").label() == "lxc:web01"


def test_unreadable_or_broken_state_is_not_an_error(tmp_path):
    root = tmp_path / "node"
    shutil.copytree(NODE, root)
    cfg = root / "var/lib/docker/containers" / ("3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
                                                "9f8a7b6c5d4e3f") / "config.v2.json"
    cfg.write_text("{not json")
    w = resolve("0::/system.slice/docker-"
                "3f4e8a2b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f.scope", root)
    assert w.label() == "docker:3f4e8a2b9c1d"


def test_discover_names_namespaces_from_runtime_state(tmp_path):
    found = netns.discover(MIXED, run_netns=tmp_path / "absent", runtime_root=NODE)
    host, a, b = found
    assert host.workload is None
    assert (a.container, a.workload.image) == ("docker:api", "registry.example/api:1.4")
    assert b.container == "pod:shop/cart-7d9f"
    assert b.ref.workload.containers == ("cart", "envoy")
    assert [i.inode for i in netns.by_workload(pod="shop/cart-7d9f", proc_root=MIXED,
                                               run_netns=tmp_path / "absent",
                                               runtime_root=NODE)] == [b.inode]
    assert [i.inode for i in netns.by_workload(container="api", proc_root=MIXED,
                                               run_netns=tmp_path / "absent",
                                               runtime_root=NODE)] == [a.inode]
    with pytest.raises(netns.NetnsNotFound, match="container 'nope'"):
        netns.by_workload(container="nope", proc_root=MIXED, run_netns=tmp_path / "absent",
                          runtime_root=NODE)
