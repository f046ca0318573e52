"""``tcplinger capture [scope] --seconds N [--write FILE] [--filter EXPR]
[--json] [--svg FILE] [--html FILE]``: a bounded live capture (tcpdump) in
the chosen namespace(s), then the analysis of ``tcplinger pcap``
(docs/wire.md), its page too with ``--html``."""

from __future__ import annotations

import os
from dataclasses import replace

from ...app.pcap import CaptureOptions, capture_scope
from ..options import DAY, OptionError, add_scope, duration_type, output_file, scope_from
from ..wire_output import (add_engine_flags, add_output_flags, analyse_and_render, capture_errors,
                           engine_flags, pcap_options)

NAME = "capture"


def interface(text: str) -> str:
    """An interface name as the kernel takes one (net/core/dev.c,
    dev_valid_name(): not empty, shorter than IFNAMSIZ (16 bytes), not
    "." or "..", no "/", ":" or white space), or tcpdump's "any".

    >>> interface("eth0"), interface("any")
    ('eth0', 'any')
    """
    raw = os.fsencode(text)
    if not raw or len(raw) >= 16 or text in (".", "..") or b"\0" in raw \
            or any(c in b"/: \t\n\v\f\r" for c in raw):
        raise OptionError("opt.bad_interface", "invalid interface name {value!r} (at most 15"
                          " bytes, no '/', ':' or spaces)", value=text)
    return text


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("wire.help.capture"), description=h("wire.help.capture_long"))
    add_scope(p, h)
    p.add_argument("--seconds", type=duration_type(maximum=DAY, positive=True), required=True,
                   metavar="N",
                   help=h("wire.help.seconds"))
    p.add_argument("--write", type=output_file, metavar="FILE", help=h("wire.help.write"))
    p.add_argument("--interface", type=interface, default="any", metavar="IFACE",
                   help=h("wire.help.interface"))
    add_output_flags(p, h)
    # checked here, before anything is captured (output_file: exit 2, 3 or 4)
    p.add_argument("--html", type=output_file, metavar="FILE", help=h("wire.help.html"))
    add_engine_flags(p, h)
    p.set_defaults(run=lambda args, term, msg: run(
        CaptureOptions(scope_from(args), args.seconds, args.write, args.filter, args.interface),
        args.json, args.svg, args.uid, args.show, term, msg, engine_flags(args), args.html))


def run(opts: CaptureOptions, as_json: bool, svg, uid, show: int, term, msg, engine,
        html=None) -> int:
    if opts.filter_text is not None:
        pcap_options((), opts.filter_text, show, msg)  # a bad filter fails before capturing
    with capture_errors(msg):
        captured = capture_scope(opts)
    try:
        said = tuple(msg("wire.notice.captured", packets=stats.captured, netns=ns.label(),
                         seconds=stats.seconds) for ns, stats in captured.files)
        # tcpdump already applied the filter: the analysis reads everything
        popts = pcap_options([s.path for _, s in captured.files], None,
                             show if uid is None else 10**9, msg, engine)
        ends = [s.end_t for _, s in captured.files if s.end_t is not None]
        popts = replace(popts, end_t=max(ends) if ends else None)
        return analyse_and_render(popts, as_json, svg, uid, term, msg, said, html=html,
                                  filter_text=opts.filter_text, kept=opts.write is not None)
    finally:
        captured.cleanup()
