"""The wire view's output, shared by ``tcplinger pcap`` and ``tcplinger
capture``: their output flags, the filter as typed options, and the
rendering of the analysis (text, streaming JSON, an SVG timeline)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_write
from ..app.pcap import CaptureFileError, PcapOptions, analyse_file
from ..ui import timeline as tl_view
from ..ui import wire as wire_view
from ..wire.filter import FilterError, compile_filter
from .errors import CliError, Exit
from .options import DAY, count_type, duration_type, output_file


@contextmanager
def capture_errors(msg):
    """A live capture that cannot run (no tcpdump) or fails, as one line
    and an exit code (``capture``, ``report --capture``)."""
    from ..collect.capture import CaptureFailed, CaptureToolMissing, NoSuchInterface

    try:
        yield
    except CaptureToolMissing:
        raise CliError(msg("wire.error.capture_tool"), Exit.UNSUPPORTED) from None
    except NoSuchInterface as exc:
        raise CliError(msg("wire.error.no_interface", interface=repr(exc.interface),
                           netns=exc.netns_path), Exit.NOT_FOUND) from None
    except CaptureFailed as exc:
        raise CliError(msg("wire.error.capture_failed", netns="-", text=str(exc)),
                       Exit.ERROR) from None


def add_output_flags(p, h) -> None:
    """``--json``, ``--filter``, ``--svg``, ``--uid``, ``--show``."""
    p.add_argument("--json", action="store_true", help=h("wire.help.json"))
    p.add_argument("--filter", metavar="EXPR", help=h("wire.help.filter"))
    p.add_argument("--svg", type=output_file, metavar="FILE", help=h("wire.help.svg"))
    p.add_argument("--uid", metavar="UID", help=h("wire.help.uid"))
    p.add_argument("--show", type=count_type(maximum=10**6), default=20, metavar="N",
                   help=h("wire.help.show"))


@dataclass(frozen=True)
class EngineFlags:
    """How connections are rebuilt (``--checksums``, ``--inactivity``,
    ``--merge-interfaces``), as typed options."""

    checksums: bool = False
    inactivity_s: float | None = None
    merge_interfaces: bool = False


def add_engine_flags(p, h) -> None:
    p.add_argument("--checksums", action="store_true", help=h("wire.help.checksums"))
    p.add_argument("--inactivity", type=duration_type(maximum=DAY, positive=True),
                   metavar="DURATION", help=h("wire.help.inactivity"))
    p.add_argument("--merge-interfaces", action="store_true",
                   help=h("wire.help.merge_interfaces"))


def engine_flags(args) -> EngineFlags:
    return EngineFlags(args.checksums, args.inactivity, args.merge_interfaces)


def pcap_options(files, filter_text: str | None, keep: int, msg,
                 engine: EngineFlags = EngineFlags()) -> PcapOptions:
    flt = None
    if filter_text is not None:
        try:
            flt = compile_filter(filter_text)
        except FilterError as exc:
            raise CliError(msg("wire.error.filter", text=str(exc)), Exit.USAGE) from None
    return PcapOptions(tuple(files), flt, keep=max(keep, 0), inactivity_s=engine.inactivity_s,
                       by_interface=not engine.merge_interfaces, checksums=engine.checksums)


def analyse_and_render(popts: PcapOptions, as_json: bool, svg: Path | None, uid: str | None,
                       term, msg, notices: tuple[str, ...] = (), *, html: Path | None = None,
                       filter_text: str | None = None, kept: bool = True) -> int:
    """Analyse, then print text or stream JSON, and write the page
    (``html``; ``kept``: whether the files outlive it, see
    render_wire_page). The notices for stderr (``notices``: the caller's, then
    the files') are said once everything went well: a run that fails says
    one line, its error."""
    writer = _JsonWriter(term) if as_json else None
    said = list(notices)
    results = []
    for path in popts.files:
        if writer is not None:
            writer.start(path)
        try:
            res = analyse_file(path, popts, writer.record if writer else None)
        except CaptureFileError as exc:
            raise CliError(msg("wire.error.line", path=str(exc.path),
                               text=msg(exc.error.key, **exc.error.fields)),
                           Exit.BAD_INPUT) from None
        results.append(res)
        if writer is not None:
            writer.end(res, msg)
        else:
            if len(results) > 1:
                term.out("")
            for line in wire_view.render_result(res, msg, width=term.width or 100):
                term.out(line)
        for n in res.notices:  # on stderr too, so that scripts see them
            said.append(msg("wire.notice_line", path=str(res.path), text=msg(n.key, **n.fields)))
    if writer is not None:
        writer.close()
    if svg is not None:
        _svg(results, svg, uid, msg)
    elif uid is not None and not _find(results, uid):
        raise CliError(msg("wire.error.no_uid", uid=uid), Exit.NOT_FOUND)
    if html is not None:
        from ..ui.html_wire import render_wire_page
        from .output import generated, write_page

        write_page(html, render_wire_page(results, msg, generated=generated(), lang=msg.lang,
                                          filter_text=filter_text, kept=kept), msg)
        said.append(msg("html.written", path=html))
    for line in said:
        term.err(line)
    return int(Exit.OK)


def _find(results, uid: str | None):
    """The connection ``uid``, or (None) the first one with a finding, else
    the first one kept."""
    for res in results:
        recs = res.summary.records()
        if uid is None:
            flagged = {f.uid for f in res.summary.findings}
            first = next((r for r in recs if r.uid in flagged), recs[0] if recs else None)
            if first is not None:
                return first
        for r in recs:
            if r.uid == uid:
                return r
    return None


def _svg(results, path: Path, uid: str | None, msg) -> None:
    rec = _find(results, uid)
    if rec is None:
        raise CliError(msg("wire.error.no_uid", uid=uid or "-"), Exit.NOT_FOUND)
    names = (wire_view.side_name(rec, "orig"), wire_view.side_name(rec, "resp"))
    title = msg("wire.timeline_title", uid=rec.uid, state=rec.conn_state, history=rec.history)
    atomic_write(path, tl_view.render_svg(rec.timeline(names), title=title, msg=msg).encode())


#: json.dumps without its check for cycles (records are trees): the same text
_encode = json.JSONEncoder(check_circular=False).encode


class _JsonWriter:
    """``{"files": [{"path", "connections": [...], "counts", "notices",
    "summary", "findings"}]}``; connections are written as they finish, so
    memory does not grow with the file (docs/json.md)."""

    def __init__(self, term):
        self.w = term.stdout.write
        self.files = 0
        self.conns = 0
        self.w('{"files": [')

    def start(self, path) -> None:
        self.w(("," if self.files else "") + "\n {" + f'"path": {json.dumps(str(path))}, '
               '"connections": [')
        self.files += 1
        self.conns = 0

    def record(self, rec, found) -> None:
        self.w(("," if self.conns else "") + "\n  " + _encode(rec.to_json(packets=bool(found))))
        self.conns += 1

    def end(self, res, msg) -> None:
        tail = {"counts": res.counts.to_json(),
                "notices": [{"key": n.key, "text": msg(n.key, **n.fields), **n.fields}
                            for n in res.notices],
                "summary": res.summary.to_json(),
                "findings": [{**f.to_json(), "text": wire_view.finding_text(f, {}, msg)}
                             for f in res.summary.sorted_findings()]}
        self.w("\n ], " + json.dumps(tail)[1:])

    def close(self) -> None:
        self.w("\n]}\n")
