"""A real podman container, named by tcplinger from podman's own state.

The container (Debian ``podman``, ``runc``, ``busybox-static``; recipe in
KERNEL-NOTES) runs busybox httpd with ``--network none`` (loopback only).
A helper process entered into the container's network namespace (nsenter)
holds 3 CLOSE_WAIT sockets there. tcplinger must find that namespace by the
container's name (``--container``), name it ``podman:<name>`` with its
image wherever namespaces are shown (report, ls/report JSON, the exporter's
labels), and say no such container exists with exit 3. The container, its
image and the helper are removed, pass or fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("podman", "runc", "busybox", "nsenter"))

import harness  # noqa: E402

PODMAN, RUNC, BUSYBOX = shutil.which("podman"), shutil.which("runc"), "/bin/busybox"

# crun fails on a cgroup v1 host and podman's default ulimits exceed the
# hard limits here (KERNEL-NOTES): cgroupfs, runc, explicit ulimits.
PODMAN_ARGS = [PODMAN, "--cgroup-manager=cgroupfs", "--runtime", RUNC]

LEAK = r"""
import socket, sys
srv = socket.create_server(("127.0.0.1", 7001))
held = []
for _ in range(3):
    c = socket.create_connection(("127.0.0.1", 7001)); s, _ = srv.accept()
    c.close(); held.append(s)      # s: CLOSE_WAIT, c: orphaned FIN_WAIT2
print("ready", flush=True)
sys.stdin.read()
"""


def podman(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN_ARGS, *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def tcplinger(*args) -> subprocess.CompletedProcess:
    return subprocess.run(harness.tcplinger_argv(*args), capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LANG": "C"})


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    tag = secrets.token_hex(4)
    image, name = f"localhost/tl-bb-{tag}:1", f"tl-web-{tag}"
    work = tmp_path_factory.mktemp("podman")
    with tarfile.open(work / "rootfs.tar", "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
    leak = None
    try:
        podman("import", str(work / "rootfs.tar"), image)
        podman("run", "-d", "--network", "none", "--ulimit", "nofile=20000:20000",
               "--ulimit", "nproc=4096:4096", "--name", name, image,
               "/bin/busybox", "httpd", "-f", "-p", "8080")
        pid = int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout)
        cid = podman("inspect", "-f", "{{.Id}}", name).stdout.strip()
        leak = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable,
                                 "-c", LEAK], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        assert leak.stdout.readline().strip() == "ready"
        yield {"name": name, "image": image, "pid": pid, "id": cid,
               "inode": os.stat(f"/proc/{pid}/ns/net").st_ino}
    finally:
        if leak is not None:
            leak.kill()
            leak.wait()
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", image, check=False)


def test_container_found_by_name_and_shown_with_its_image(container):
    name = container["name"]
    p = tcplinger("ls", "--container", name, "--state", "close-wait", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert len(doc["sockets"]) == 3
    (ns,) = doc["namespaces"]
    assert ns["netns"] == {"inode": container["inode"], "name": None,
                           "container": f"podman:{name}"}
    assert ns["workload"] == {"runtime": "podman", "id": container["id"][:12], "name": name,
                              "image": container["image"], "pod": None, "containers": []}
    # by an id prefix too, as `podman ps` shows it
    p = tcplinger("ls", "--container", container["id"][:12], "--json")
    assert json.loads(p.stdout)["namespaces"][0]["netns"]["inode"] == container["inode"]


def test_report_names_the_container_everywhere(container):
    name = container["name"]
    p = tcplinger("report", "--container", name)
    assert p.returncode == 0, p.stderr
    head = p.stdout.splitlines()[:2]
    assert head[0].startswith(f"namespace podman:{name} (net:[{container['inode']}])")
    assert head[1].strip() == (f"podman, container {name}, image {container['image']}, "
                               f"id {container['id'][:12]}")
    p = tcplinger("report", "--all-netns", "--json", "--no-owners")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    mine = [s for s in doc["summary"] if s["netns"]["inode"] == container["inode"]]
    assert mine and mine[0]["label"] == f"podman:{name}"
    assert mine[0]["workload"]["image"] == container["image"]


def test_exporter_labels_name_the_container(container, tmp_path):
    p = tcplinger("exporter", "--container", container["name"], "--no-findings",
                  "--textfile", str(tmp_path))
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "tcplinger.prom").read_text()
    want = (f'tcplinger_sockets{{container="podman:{container["name"]}",'
            f'netns="podman:{container["name"]}",owner=')
    assert want in text
    assert 'pod=""' in text  # not a Kubernetes pod


def test_unknown_container_is_exit_3(container):
    p = tcplinger("ls", "--container", "tl-no-such-container")
    assert p.returncode == 3
    assert p.stderr.strip() == ("tcplinger: no network namespace of container "
                                "'tl-no-such-container' on this host")
