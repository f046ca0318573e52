"""Exit codes and the one error type the CLI turns into a single line.

The codes are part of the interface (README, "Exit codes").
"""

from __future__ import annotations

import enum
import errno


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1  # an unexpected failure (a bug: please report it)
    USAGE = 2  # bad arguments: unknown state, bad port, unknown option
    NOT_FOUND = 3  # a namespace, process or rule that does not exist
    PERMISSION = 4  # not allowed (not root, no CAP_NET_ADMIN/CAP_SYS_ADMIN)
    UNSUPPORTED = 5  # the kernel lacks a needed feature
    REFUSED = 6  # kill --yes: every selected socket was refused, nothing was done
    BAD_INPUT = 7  # a file that is not what it should be: capture, watch database, state file
    INTERRUPTED = 130


class CliError(Exception):
    """A message for the user and the exit code that goes with it."""

    def __init__(self, message: str, code: Exit = Exit.ERROR):
        super().__init__(message)
        self.message = message
        self.code = code


class CatalogError(CliError):
    """A CliError told by its catalog key: ``message`` is the English
    text, main.py says ``msg(key, **fields)`` in the user's language
    (for code that runs before a Messages is at hand: argument checks).

    >>> e = CatalogError("error.unknown_rule", Exit.USAGE, rule="'x'")
    >>> e.message, int(e.code)
    ("unknown rule 'x' (see `tcplinger rules`)", 2)
    """

    def __init__(self, key: str, code: Exit = Exit.ERROR, **fields):
        from ..i18n import Messages

        self.key = key
        self.fields = fields
        super().__init__(self.render(Messages("en")), code)

    def render(self, msg) -> str:
        """The text in ``msg``'s language (see :func:`said`)."""
        return said(msg, self.key, self.fields)


def said(msg, key: str, fields: dict) -> str:
    """``msg(key, **fields)``, where a field that is itself a keyed error
    (units.BadValue, a Notice, a ParamError: ``key`` and ``fields``) is
    said by its own key.

    >>> from tcplinger.i18n import Messages
    >>> from tcplinger.model.params import ParamError
    >>> e = ParamError("param.vary_empty", "--vary {key}: no values", key="x")
    >>> said(Messages("zh"), e.key, e.fields)
    '--vary x：没有取值'
    """
    return msg(key, **{k: said(msg, v.key, v.fields) if hasattr(v, "key") and
                       hasattr(v, "fields") else v for k, v in fields.items()})


#: errno -> exit code, for an OSError no command turned into a message of
#: its own (README, "Exit codes"): a missing file is "not found", a file
#: that may not be written "permission denied", a name that cannot be a
#: file of that kind "bad arguments"
_BY_ERRNO = {
    errno.ENOENT: Exit.NOT_FOUND, errno.ESRCH: Exit.NOT_FOUND, errno.ENODEV: Exit.NOT_FOUND,
    errno.ENXIO: Exit.NOT_FOUND,
    errno.EACCES: Exit.PERMISSION, errno.EPERM: Exit.PERMISSION, errno.EROFS: Exit.PERMISSION,
    errno.EISDIR: Exit.USAGE, errno.ENOTDIR: Exit.USAGE, errno.ENAMETOOLONG: Exit.USAGE,
    errno.ELOOP: Exit.USAGE, errno.EFBIG: Exit.USAGE, errno.EEXIST: Exit.USAGE,
    errno.EOPNOTSUPP: Exit.UNSUPPORTED, errno.EPROTONOSUPPORT: Exit.UNSUPPORTED,
}


def exit_for(exc: OSError) -> Exit:
    """The exit code of an OSError.

    >>> int(exit_for(FileNotFoundError(2, "x"))), int(exit_for(OSError(errno.EROFS, "x")))
    (3, 4)
    >>> from tcplinger.fsutil import NotARegularFile
    >>> int(exit_for(NotARegularFile("/dev/null", "a character device")))
    2
    """
    from ..fsutil import NotARegularFile

    if isinstance(exc, NotARegularFile):
        return Exit.USAGE
    return _BY_ERRNO.get(exc.errno, Exit.ERROR)


def one_line(text: str) -> str:
    r"""An error is one line, whatever it quotes (a file or namespace name
    with a newline in it): line breaks are shown escaped.

    >>> print(one_line("no connection tl\nx among those kept"))
    no connection tl\nx among those kept
    """
    return text.replace("\r", "\\r").replace("\n", "\\n")
