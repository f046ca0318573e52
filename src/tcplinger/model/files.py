"""A file tcplinger keeps its own data in (the watch database, check's
counters, tune's state file) that holds something else: one exception,
so that every command says it the same way (one line naming the file,
in the user's language) and exits 7, and leaves the file as it is.

>>> e = NotOurFile("/tmp/x", "file.not_check_state", "not JSON")
>>> str(e), e.fields
("/tmp/x: not tcplinger's: not JSON (left as it is)", {'path': '/tmp/x', 'reason': 'not JSON'})
"""

from __future__ import annotations


class NotOurFile(ValueError):
    """``path`` is not a file of the kind tcplinger wrote there; ``key``
    names the catalog text of what it is instead ("file.*" in
    messages/*/core.toml), ``reason`` the detail as the library said it
    (SQLite's or JSON's English text)."""

    def __init__(self, path, key: str, reason: str = ""):
        self.path = str(path)
        self.key = key
        self.fields = {"path": self.path, "reason": reason}
        super().__init__(f"{self.path}: not tcplinger's: {reason} (left as it is)")
