"""Packets to connections: pcap/pcapng decoding, per-connection
reconstruction with Zeek's ``conn_state`` and ``history``, each endpoint's
inferred TCP state timeline, and findings from packets (docs/wire.md).

Pure: the readers take an open binary stream; opening files and running a
live capture belong to the callers (``collect/capture.py``, the CLI).
"""
