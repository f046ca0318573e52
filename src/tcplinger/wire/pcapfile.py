"""Capture files (pcap and pcapng) read in blocks: record boundaries,
timestamps and link types as numpy columns, the packets' bytes left where
they are.

pcap (pcap-savefile(5)): a 24-byte header (magic 0xa1b2c3d4, or
0xa1b23c4d for nanosecond timestamps, in the writer's byte order; the
link type at offset 20), then per packet a 16-byte header (seconds,
fraction, captured length, original length) and the captured bytes.

pcapng (draft-ietf-opsawg-pcapng): blocks of (type u32, total length u32,
body, total length u32). A Section Header Block (0x0a0d0d0a) sets the byte
order (magic 0x1a2b3c4d); Interface Description Blocks (1) give each
interface its link type, snap length, name (option 2, ``if_name``, UTF-8)
and timestamp resolution (option 9, ``if_tsresol``: 10^-v, or 2^-v when
the top bit is set; option 14, ``if_tsoffset``); Enhanced Packet Blocks (6) carry an interface id, a
64-bit timestamp, captured and original length; Simple Packet Blocks (3)
carry only the original length (interface 0, no timestamp).

A pcap file with one 60-byte packet, written by hand:

>>> import io, struct
>>> hdr = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
>>> rec = struct.pack("<IIII", 1700000000, 250000, 60, 60) + bytes(60)
>>> notices = []
>>> [b] = read_blocks(io.BytesIO(hdr + rec + rec[:10]), notices)
>>> b.file_offset, b.start.tolist(), b.caplen.tolist(), b.ts.tolist(), b.linktype.tolist()
(24, [16], [60], [1700000000.25], [1])
>>> notices[0].key
'wire.notice.truncated'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..model.text import printable

#: Bytes read at a time: the unit of streaming (memory per block is about
#: twice this, whatever the file's size).
BLOCK_BYTES = 8 << 20
#: Larger captured lengths mean a corrupt record (libpcap's own limit is
#: 256 KiB; pcapng allows more, nobody writes more).
MAX_RECORD = 16 << 20
#: Zero bytes after each block's data, so that vectorised header reads a
#: few bytes past a short packet never leave the array.
PAD = 128

PCAP_MAGIC = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D


class CaptureError(ValueError):
    """A file that cannot be read as a capture: a catalog key and fields
    (``wire.error.*``) for the one line the CLI prints."""

    def __init__(self, key: str, **fields):
        super().__init__(f"{key} {fields}")
        self.key = key
        self.fields = fields


@dataclass(frozen=True)
class Notice:
    """Something the user should know about a file that was read anyway."""

    key: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Block:
    """Records of one read: ``data`` holds their bytes (plus padding);
    ``start[i]`` is where packet i's captured bytes begin in it."""

    data: np.ndarray  # uint8
    start: np.ndarray  # int64
    caplen: np.ndarray  # int64
    wirelen: np.ndarray  # int64
    ts: np.ndarray  # float64, seconds since the epoch
    linktype: np.ndarray  # int64, per record (pcapng interfaces differ)
    interface: np.ndarray  # int64, the file's interface number (0 for pcap)
    file_offset: int  # where the block's data starts in the file
    #: pcapng's if_name of each interface number described so far (None: no
    #: name given); empty for pcap, which names no interface
    interface_names: tuple = ()

    def __len__(self) -> int:
        return len(self.start)


def _cols(data: np.ndarray, pos: np.ndarray, fmt: str, nbytes: int) -> np.ndarray:
    """``nbytes`` at each of ``pos`` viewed as fields of ``fmt``: (n, k)."""
    idx = pos[:, None] + np.arange(nbytes)
    return np.ascontiguousarray(data[idx]).view(fmt)


def _padded(chunk: bytes) -> np.ndarray:
    arr = np.zeros(len(chunk) + PAD, np.uint8)
    arr[:len(chunk)] = np.frombuffer(chunk, np.uint8)
    return arr


class _Source:
    """A binary stream read in blocks, with what was left of the last."""

    def __init__(self, stream, head: bytes, offset: int):
        self.stream = stream
        self.rest = head
        self.offset = offset  # file offset of rest[0]
        self.eof = False

    def more(self, block_bytes: int) -> bytes:
        data = self.stream.read(block_bytes)
        if not data:
            self.eof = True
            return self.rest
        self.rest = self.rest + data if self.rest else data
        return self.rest

    def consume(self, n: int) -> None:
        self.rest = self.rest[n:]
        self.offset += n


def read_blocks(stream, notices: list, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """The records of a pcap or pcapng stream, block by block. A record cut
    by the end of the file ends the reading with a notice; anything else
    that is not a capture raises :class:`CaptureError`."""
    head = stream.read(24)
    if len(head) < 4:
        raise CaptureError("wire.error.empty")
    magic_le = struct.unpack_from("<I", head)[0]
    magic_be = struct.unpack_from(">I", head)[0]
    if magic_le == PCAPNG_SHB:
        yield from _pcapng(_Source(stream, head, 0), notices, block_bytes)
        return
    for endian, magic in (("<", magic_le), (">", magic_be)):
        if magic in PCAP_MAGIC:
            if len(head) < 24:
                raise CaptureError("wire.error.short_header")
            linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0x0FFFFFFF
            yield from _pcap(_Source(stream, b"", 24), endian, PCAP_MAGIC[magic], linktype,
                             notices, block_bytes)
            return
    raise CaptureError("wire.error.not_capture", magic=f"{magic_be:08x}")


def _pcap(src: _Source, endian: str, scale: float, linktype: int, notices: list,
          block_bytes: int) -> Iterator[Block]:
    length_at = struct.Struct(endian + "I").unpack_from
    while not src.eof:
        buf = src.more(block_bytes)
        end = len(buf)
        pos = 0
        starts = []
        append = starts.append
        while pos + 16 <= end:
            incl = length_at(buf, pos + 8)[0]
            if incl > MAX_RECORD:
                raise CaptureError("wire.error.corrupt_record", offset=src.offset + pos,
                                   length=incl)
            nxt = pos + 16 + incl
            if nxt > end:
                break
            append(pos)
            pos = nxt
        if starts:
            data = _padded(buf[:pos])
            at = np.array(starts, np.int64)
            hdr = _cols(data, at, endian + "u4", 16).astype(np.int64)
            n = len(at)
            yield Block(data, at + 16, hdr[:, 2], hdr[:, 3],
                        hdr[:, 0] + hdr[:, 1] * scale, np.full(n, linktype, np.int64),
                        np.zeros(n, np.int64), src.offset)
        src.consume(pos)
    if src.rest:
        notices.append(Notice("wire.notice.truncated",
                              {"offset": src.offset, "bytes": len(src.rest)}))


#: Characters of an interface name kept (pcapng's if_name, shown as text).
NAME_MAX = 100


@dataclass
class _Iface:
    linktype: int
    snaplen: int
    scale: float = 1e-6
    offset_s: int = 0
    name: str | None = None


def _idb(body: bytes, e: str) -> _Iface:
    r"""An Interface Description Block's body: link type u16, reserved u16,
    snap length u32, then options (code u16, length u16, value padded to 4).

    >>> body = struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HH", 2, 4) + b"eth0" \
    ...     + struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 0, 0)
    >>> i = _idb(body, "<")
    >>> i.linktype, i.snaplen, i.name, i.scale
    (1, 262144, 'eth0', 1e-09)
    """
    linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
    iface = _Iface(linktype, snaplen)
    pos = 8
    while pos + 4 <= len(body):
        code, olen = struct.unpack_from(e + "HH", body, pos)
        if code == 0:
            break
        val = body[pos + 4:pos + 4 + olen]
        if code == 9 and olen >= 1:  # if_tsresol
            v = val[0]
            iface.scale = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == 14 and olen >= 8:  # if_tsoffset (seconds)
            iface.offset_s = struct.unpack_from(e + "q", val)[0]
        elif code == 2 and val.rstrip(b"\0"):  # if_name; some writers end it with NULs
            # a newline or escape sequence in it: "?" (the wire page, its HTML)
            name = printable(val.rstrip(b"\0").decode("utf-8", "replace"))
            # up to 65535 bytes in the file; Windows' NPF names are ~50
            iface.name = name if len(name) <= NAME_MAX else name[:NAME_MAX - 1] + "…"
        pos += 4 + ((olen + 3) & ~3)
    return iface


def _pcapng(src: _Source, notices: list, block_bytes: int) -> Iterator[Block]:
    e = "<"
    section: list[_Iface] = []
    ifaces: list[_Iface] = []  # every interface of the file, numbered in order
    base = 0  # this section's first interface in ``ifaces``
    last_ts = 0.0
    while not src.eof:
        buf = src.more(block_bytes)
        end = len(buf)
        pos = 0
        rows = []  # (packet data offset, caplen, wirelen, global iface, ts_hi, ts_lo)
        while pos + 12 <= end:
            btype = struct.unpack_from(e + "I", buf, pos)[0]
            if btype == PCAPNG_SHB:
                bom = struct.unpack_from("<I", buf, pos + 8)[0]
                e = "<" if bom == PCAPNG_BOM else ">" if bom == 0x4D3C2B1A else None
                if e is None:
                    raise CaptureError("wire.error.corrupt_block", offset=src.offset + pos)
            blen = struct.unpack_from(e + "I", buf, pos + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                raise CaptureError("wire.error.corrupt_block", offset=src.offset + pos)
            if pos + blen > end:
                break
            body = pos + 8
            if btype == 6:  # Enhanced Packet Block
                iid, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", buf, body)
                if iid >= len(section) or cap > blen - 32:
                    raise CaptureError("wire.error.corrupt_block", offset=src.offset + pos)
                rows.append((body + 20, cap, orig, base + iid, hi, lo))
            elif btype == 3:  # Simple Packet Block
                orig = struct.unpack_from(e + "I", buf, body)[0]
                if not section:
                    raise CaptureError("wire.error.corrupt_block", offset=src.offset + pos)
                cap = min(orig, blen - 16, section[0].snaplen or orig)
                rows.append((body + 4, cap, orig, base, -1, -1))
            elif btype == 2:  # Packet Block (obsolete)
                iid, _, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", buf, body)
                if iid >= len(section) or cap > blen - 32:
                    raise CaptureError("wire.error.corrupt_block", offset=src.offset + pos)
                rows.append((body + 20, cap, orig, base + iid, hi, lo))
            elif btype == 1:  # Interface Description Block
                iface = _idb(buf[body:pos + blen - 4], e)
                section.append(iface)
                ifaces.append(iface)
            elif btype == PCAPNG_SHB:
                section, base = [], len(ifaces)
            pos += blen
        if rows:
            arr = np.array([r[:4] for r in rows], np.int64)
            hi = np.array([r[4] for r in rows], np.int64)
            lo = np.array([r[5] for r in rows], np.int64)
            gi = arr[:, 3]
            scale = np.array([f.scale for f in ifaces])[gi]
            off = np.array([f.offset_s for f in ifaces], np.float64)[gi]
            ts = ((hi << 32) | lo).astype(np.float64) * scale + off
            if (hi < 0).any():  # Simple Packet Blocks: the previous timestamp
                ts = _fill_forward(ts, hi < 0, last_ts)
            last_ts = float(ts[-1])
            data = _padded(buf[:pos])
            yield Block(data, arr[:, 0], arr[:, 1], arr[:, 2], ts,
                        np.array([f.linktype for f in ifaces], np.int64)[gi], gi, src.offset,
                        tuple(f.name for f in ifaces))
        src.consume(pos)
    if src.rest:
        notices.append(Notice("wire.notice.truncated",
                              {"offset": src.offset, "bytes": len(src.rest)}))


def _fill_forward(ts: np.ndarray, missing: np.ndarray, first: float) -> np.ndarray:
    """Timestamps of Simple Packet Blocks: the last known one before them.

    >>> _fill_forward(np.array([1.0, 0.0, 3.0, 0.0]), np.array([0, 1, 0, 1], bool), 0.5).tolist()
    [1.0, 1.0, 3.0, 3.0]
    """
    idx = np.where(missing, 0, np.arange(len(ts)))
    np.maximum.accumulate(idx, out=idx)
    out = ts[idx]
    if missing[0]:
        lead = np.cumprod(missing).astype(bool)
        out[lead] = first
    return out
