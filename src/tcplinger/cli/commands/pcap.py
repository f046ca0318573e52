"""``tcplinger pcap FILE... [--json] [--html FILE] [--filter EXPR] [--svg FILE]
[--uid UID] [--show N] [--checksums] [--inactivity DURATION]
[--merge-interfaces]``: rebuild every TCP connection of capture files with
Zeek's conn_state and history, each endpoint's states, and findings from
the packets (docs/wire.md); ``--html`` also writes the page of
ui/html_wire.py (with the text or the JSON, as ``report --html``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...fsutil import check_regular
from ..errors import CliError, Exit
from ..options import input_file, output_file
from ..wire_output import (EngineFlags, add_engine_flags, add_output_flags, analyse_and_render,
                           engine_flags, pcap_options)

NAME = "pcap"


@dataclass(frozen=True)
class Options:
    files: tuple[Path, ...]
    json: bool
    filter: str | None
    svg: Path | None
    uid: str | None
    show: int
    engine: EngineFlags
    html: Path | None = None


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("wire.help.pcap"), description=h("wire.help.pcap_long"))
    p.add_argument("files", nargs="+", type=input_file, metavar="FILE", help=h("wire.help.files"))
    add_output_flags(p, h)
    # checked here, before any file is read (output_file: exit 2, 3 or 4)
    p.add_argument("--html", type=output_file, metavar="FILE", help=h("wire.help.html"))
    add_engine_flags(p, h)
    p.set_defaults(run=lambda args, term, msg: run(Options(
        tuple(args.files), args.json, args.filter, args.svg, args.uid, args.show,
        engine_flags(args), args.html), term, msg))


def run(opts: Options, term, msg) -> int:
    for path in opts.files:
        check_regular(path)  # a FIFO would wait for a writer: refused, exit 2 (README)
        if not path.exists():
            raise CliError(msg("wire.error.no_file", path=str(path)), Exit.NOT_FOUND)
    popts = pcap_options(opts.files, opts.filter, opts.show if opts.uid is None else 10**9,
                         msg, opts.engine)
    return analyse_and_render(popts, opts.json, opts.svg, opts.uid, term, msg,
                              html=opts.html, filter_text=opts.filter)
