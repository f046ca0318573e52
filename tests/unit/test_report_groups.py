"""A node with many pods, on recorded inputs: the report grows with the
problems, not with the namespaces (issue 15, item 5).

tests/data/pods/node.json is six pods recorded on a real kernel
(tests/data/pods/record.py): pod 0 a python app holding 12 CLOSE_WAIT,
pod 1 the same app renamed ``worker`` with 5, pods 2 and 3 the python app
with 5, pods 4 and 5 quiet (a listener and 40 ESTABLISHED each, like every
pod). Each pod is rebuilt from its own /proc files (procfs and sysctls as
the kernel printed them), its processes' fds, and the names containerd's
bundle gave it; ``ss -tanpH`` recorded in the same pod is the oracle.
Cloning the pods (new inodes and names, the same sockets) makes a node of
any size from them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from tcplinger.app.diagnosis import Diagnosis
from tcplinger.cli.commands import check as check_cmd
from tcplinger.collect import kernel as kernel_reader
from tcplinger.collect import procfs
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.groups import group_findings
from tcplinger.diagnose.inputs import NamespaceInput, ProcessFacts
from tcplinger.diagnose.summary import namespace_summary, overview
from tcplinger.export import findings as findings_export
from tcplinger.i18n import Messages
from tcplinger.model.socket import NetnsRef, Owner
from tcplinger.model.workload import Workload
from tcplinger.ui import html
from tcplinger.ui import overview as overview_view
from tcplinger.ui import report as report_view

NODE = json.loads((Path(__file__).resolve().parents[1] / "data" / "pods" / "node.json")
                  .read_text())["pods"]
EN = Messages("en")


def _input(pod: dict, root: Path, *, inode: int | None = None, suffix: str = "") -> NamespaceInput:
    for rel, text in pod["files"].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    table = procfs.read_sockets(root / "net")
    kernel = kernel_reader.read_kernel_context(root, proc_net=root / "net")
    owners: dict[int, tuple] = {}
    for ino, holders in pod["owners"].items():
        owners[int(ino)] = tuple(
            Owner(h["pid"], pod["processes"][str(h["pid"])]["comm"], h["fd"],
                  pod["processes"][str(h["pid"])]["cmdline"]) for h in holders)
    processes = {int(pid): ProcessFacts(p["open_fds"], p["soft_limit"])
                 for pid, p in pod["processes"].items()}
    w = dict(pod["workload"])
    w["pod_name"] += suffix
    workload = Workload(**w)
    ref = NetnsRef(inode or pod["inode"], pod["name"] + suffix, workload.label(), workload)
    return NamespaceInput(ref, kernel, table, owners=owners, processes=processes)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[NamespaceInput]:
    root = tmp_path_factory.mktemp("pods")
    return [_input(p, root / p["name"]) for p in NODE]


def node(recorded, copies: int) -> list[NamespaceInput]:
    """The recorded pods and ``copies`` more of pod 2 (a python app with 5
    CLOSE_WAIT) and of pod 4 (quiet), under new inodes and names."""
    out = list(recorded)
    for k in range(copies):
        for src in (recorded[2], recorded[4]):
            w = replace(src.netns.workload, pod_name=f"{src.netns.workload.pod_name}-c{k}")
            ref = NetnsRef(src.netns.inode * 1000 + k, f"{src.netns.name}-c{k}", w.label(), w)
            out.append(replace(src, netns=ref))
    return out


def ss_counts(pod: dict) -> Counter:
    return Counter(line.split()[0] for line in pod["ss"].splitlines())


def by_pod(pod_name: str) -> dict:
    return next(p for p in NODE if p["workload"]["pod_name"] == pod_name)


def test_groups_equal_ss(recorded):
    findings = diagnose(recorded)
    groups = group_findings(findings)
    cw = [g for g in groups if g.rule == "close-wait-leak"]
    assert [(g.program.comm, len(g.members)) for g in cw] == [("python3.11", 3), ("worker", 1)]
    app = cw[0]
    names = {m.netns.workload.pod_name: m for m in app.members}
    assert set(names) == {by_pod(n)["workload"]["pod_name"] for n in names}
    for name, m in names.items():  # every member's count is ss's for that pod
        assert m.count == ss_counts(by_pod(name))["CLOSE-WAIT"]
    assert app.total == sum(ss_counts(by_pod(n))["CLOSE-WAIT"] for n in names) == 22
    assert (app.least, app.most) == (5, 12)
    assert app.worst.netns.workload.pod_name == NODE[0]["workload"]["pod_name"]
    assert app.worst.owners[0].pid == NODE[0]["app_pid"]
    assert app.kind == "pods"
    assert app.evidence_stats()["close_wait"] == {"total": 22, "min": 5, "max": 12, "members": 3}
    # every finding is in exactly one group
    assert sorted(i for g in groups for i in g.indices) == list(range(len(findings)))


def test_overview_one_line_per_pod_with_lingering_sockets(recorded):
    summaries = [namespace_summary(i) for i in recorded]
    ov = overview(summaries, diagnose(recorded))
    lingering = {p["inode"]: ss_counts(p)["CLOSE-WAIT"] for p in NODE if ss_counts(p)["CLOSE-WAIT"]}
    assert {line.summary["netns"]["inode"]: dict(line.lingering) for line in ov.lines} == \
        {ino: {"CLOSE_WAIT": n} for ino, n in lingering.items()}
    assert ov.lines[0].summary["netns"]["inode"] == NODE[0]["inode"]  # the most first
    quiet = [p for p in NODE if p["inode"] not in lingering]
    assert (ov.quiet, ov.quiet_sockets) == (len(quiet), sum(len(p["ss"].splitlines())
                                                            for p in quiet))
    assert all(line.worst.rule == "close-wait-leak" for line in ov.lines)


def _text(inputs, msg=EN) -> list[str]:
    findings = diagnose(inputs)
    summaries = [namespace_summary(i) for i in inputs]
    return overview_view.render(overview(summaries, findings), group_findings(findings), msg,
                                namespaces=len(inputs), sockets=sum(s["total"] for s in summaries),
                                width=100)


def _findings_part(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("Findings: "))
    return lines[start:]


def test_text_grows_with_the_problems_not_the_namespaces(recorded):
    small, large = _text(recorded), _text(node(recorded, 40))
    # 40 more pods with CLOSE_WAIT and 40 more quiet ones: 40 more overview
    # lines, not one line more for the quiet pods or for the findings
    assert len(large) - len(small) == 40
    part_small, part_large = _findings_part(small), _findings_part(large)
    assert len(part_small) == len(part_large)
    assert "python3.11 holds 5 to 12 CLOSE_WAIT in each of 3 pods (22 in all)" in part_small[2]
    assert "python3.11 holds 5 to 12 CLOSE_WAIT in each of 43 pods (222 in all)" in part_large[2]
    assert re.search(r"pods: shop/app-000-\w+, shop/app-002-\w+(, [^,]+)* and 41 more$",
                     part_large[3])
    assert re.search(r"Quiet namespaces .*: 42, holding 1722 TCP sockets", "\n".join(large))
    assert "Findings: 44, grouped by rule and program: 2" in part_large[0]
    # the worst member is shown in full, once
    assert sum("holds 12 sockets" in line for line in large) == 1  # the command line wraps it
    # today's full view would have grown by a table and a finding per pod
    verbose = report_view.render([namespace_summary(i) for i in node(recorded, 40)],
                                 diagnose(node(recorded, 40)), EN, width=100)
    assert len(verbose) > 8 * len(node(recorded, 40))


def test_text_in_chinese(recorded):
    lines = _text(node(recorded, 2), Messages("zh"))
    text = "\n".join(lines)
    assert "python3.11 在 5 个 Pod 中各持有 5 到 12 个 CLOSE_WAIT（共 32 个）" in text
    assert "安静的命名空间" in text and "按规则和程序分为 2 组" in text


def test_json_groups_point_at_their_findings(recorded):
    inputs = node(recorded, 3)
    findings = diagnose(inputs)
    groups = group_findings(findings)
    summaries = [namespace_summary(i) for i in inputs]
    doc = json.loads(json.dumps(findings_export.document(
        findings, summaries, EN, groups=groups, overview=overview(summaries, findings))))
    assert len(doc["findings"]) == len(findings)  # every finding as before
    g = doc["groups"][0]
    assert g["rule"] == "close-wait-leak" and g["program"]["comm"] == "python3.11"
    assert g["kind"] == "pods" and g["count"] == {"total": 37, "min": 5, "max": 12}
    assert g["title"] == "python3.11 holds 5 to 12 CLOSE_WAIT in each of 6 pods (37 in all)"
    for m in g["members"]:
        assert [doc["findings"][i]["netns"] for i in m["findings"]] == [m["netns"]]
        assert m["count"] == sum(doc["findings"][i]["count"] for i in m["findings"])
    assert doc["findings"][g["worst"]]["count"] == 12
    assert g["severities"][doc["findings"][g["worst"]]["severity"]] >= 1
    assert sorted(i for grp in doc["groups"] for m in grp["members"] for i in m["findings"]) == \
        list(range(len(findings)))
    ov = doc["overview"]
    assert len(ov["namespaces"]) == 7 and ov["quiet"]["namespaces"] == 5
    assert all(doc["findings"][n["worst"]]["netns"] == n["netns"] for n in ov["namespaces"])


def test_html_has_the_overview_and_the_groups(recorded):
    inputs = node(recorded, 3)
    findings = diagnose(inputs)
    summaries = [namespace_summary(i) for i in inputs]
    doc = findings_export.document(findings, summaries, EN, groups=group_findings(findings),
                                   overview=overview(summaries, findings))
    page = html.render_page(doc, EN, generated="now", host="node")
    assert "<script" not in page
    assert "Namespaces with lingering sockets or findings (7 of 12)" in page
    assert page.count('id="group-') == 2
    assert "python3.11 holds 5 to 12 CLOSE_WAIT in each of 6 pods (37 in all)" in page
    # every member is listed (folded in <details>), the worst in full once
    for m in doc["groups"][0]["members"]:
        assert m["name"] in page
    assert page.count("holds 12 sockets in CLOSE_WAIT") == 1
    # one namespace: the page as before (no overview)
    one = findings_export.document(findings[:1], summaries[:1], EN, groups=group_findings(
        findings[:1]), overview=overview(summaries[:1], findings[:1]))
    assert "Namespaces with lingering" not in html.render_page(one, EN, generated="now", host="n")


def test_check_names_a_group_once(recorded):
    """``check``'s one line: the warning group once, not its pods one by one."""
    inputs = node(recorded, 3)
    findings = diagnose(inputs, thresholds={"close-wait-leak": {"warning_count": 5, "min_age": 0}})  # recorded: no ages
    d = Diagnosis(None, inputs, findings, None, {})
    code, text = check_cmd.status(d, EN)
    worker = next(f for f in findings if f.owners[0].comm == "worker")
    assert code == check_cmd.WARNING
    assert text == ("0 critical, 7 warnings: close-wait-leak: python3.11 holds 5 to 12 "
                    "CLOSE_WAIT in each of 6 pods (37 in all); close-wait-leak "
                    f"[{inputs[1].netns.label()}] " + worker.title.render(EN))
