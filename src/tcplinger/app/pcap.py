"""Use case: analyse capture files (``tcplinger pcap``, the live capture
once written, the lab's recordings): open each file, stream it through
wire/, and hand back a summary per file; every finished connection can
also go to ``on_record`` as it comes (the JSON writer streams them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..wire.filter import Filter
from ..wire.pcapfile import CaptureError, read_blocks
from ..wire.record import ConnRecord
from ..wire.summary import Summary
from ..wire.tracker import Counts, analyse_stream


@dataclass(frozen=True)
class PcapOptions:
    files: tuple[Path, ...]
    filter: Filter | None = None
    keep: int = 20  # connections kept for display per file
    inactivity_s: float | None = None
    by_interface: bool = True
    #: when the capture stopped (live captures know; a file ends at its last packet)
    end_t: float | None = None
    #: False: the per-packet engine alone (the reference the columnar fast
    #: path is checked against, tests/unit/test_wire_fastpath.py)
    columnar: bool = True
    #: verify TCP checksums: a bad one is history C and nothing else (Zeek
    #: without -C); off by default, as captures on a Linux host carry
    #: offloaded, unfilled checksums
    checksums: bool = False


@dataclass
class FileResult:
    path: Path
    counts: Counts
    summary: Summary
    notices: list = field(default_factory=list)


class CaptureFileError(Exception):
    """A file that could not be analysed: its path and the reader's error."""

    def __init__(self, path: Path, error: CaptureError):
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error


def analyse_file(path: Path, opts: PcapOptions,
                 on_record: Callable[[ConnRecord, list], None] | None = None) -> FileResult:
    """One file; ``on_record(record, findings)`` for every connection."""
    summary = Summary(keep=opts.keep)
    notices: list = []

    def emit(rec: ConnRecord) -> None:
        found = summary.add(rec)
        if on_record is not None:
            on_record(rec, found)
    with open(path, "rb") as stream:
        try:
            counts = analyse_stream(read_blocks(stream, notices), emit, notices,
                                    keep=opts.filter, inactivity_s=opts.inactivity_s,
                                    by_interface=opts.by_interface, end_t=opts.end_t,
                                    columnar=opts.columnar, checksums=opts.checksums)
        except CaptureError as exc:
            raise CaptureFileError(path, exc) from None
    return FileResult(path, counts, summary, notices)


def analyse_files(opts: PcapOptions, on_record=None, on_file=None) -> list[FileResult]:
    """Every file in turn (each is its own vantage point: connections are
    not merged across files)."""
    out = []
    for path in opts.files:
        if on_file is not None:
            on_file(path)
        out.append(analyse_file(path, opts, on_record))
    return out


@dataclass(frozen=True)
class CaptureOptions:
    scope: object  # collect.snapshot.Scope
    seconds: float
    write: Path | None = None  # keep the capture here (one file per namespace)
    filter_text: str | None = None
    interface: str = "any"


@dataclass
class Captured:
    files: list  # (NetnsInfo, CaptureStats)
    tmpdir: Path | None

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            import shutil
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def capture_scope(opts: CaptureOptions) -> Captured:
    """Capture every namespace of the scope at once (one tcpdump each, in
    threads) for ``opts.seconds``; the caller analyses the files and calls
    ``cleanup()``."""
    import dataclasses
    import tempfile
    import threading

    from ..collect.capture import capture
    from ..fsutil import atomic_path
    from ..collect.snapshot import resolve

    spaces, _ = resolve(opts.scope)
    tmpdir = None
    if opts.write is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="tl-capture-"))
    out: list = [None] * len(spaces)
    errors: list = []

    def one(i, ns):
        if opts.write is None:
            path = tmpdir / f"ns{ns.inode}.pcap"
        elif len(spaces) == 1:
            path = opts.write
        else:
            path = opts.write.with_name(f"{opts.write.stem}.{ns.name or ns.inode}"
                                        f"{opts.write.suffix or '.pcap'}")
        try:
            if opts.write is None:
                out[i] = (ns, capture(ns.path, path, opts.seconds, opts.filter_text,
                                      opts.interface))
                return
            # --write: whole or not at all, never over a device (the one atomic writer)
            with atomic_path(path) as tmp:
                stats = capture(ns.path, tmp, opts.seconds, opts.filter_text, opts.interface)
            out[i] = (ns, dataclasses.replace(stats, path=path))
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(i, ns), daemon=True)
               for i, ns in enumerate(spaces)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        if tmpdir is not None:
            import shutil
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise errors[0]
    return Captured([x for x in out if x is not None], tmpdir)
