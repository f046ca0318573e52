"""sock_diag collector: hand-written wire tables (:mod:`.wire`), pure
encode/decode (:mod:`.codec`), the dump and exact lookups (:mod:`.dump`),
and SOCK_DESTROY (:mod:`.destroy`).

Import the submodules; this package imports nothing itself, so that
loading :mod:`.codec` for tests needs no socket.
"""
