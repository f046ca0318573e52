"""Numbers and durations as people type them: one grammar for every option.

Every option, ``--set NAME=VALUE``, ``--vary`` value, threshold override and
scenario value that takes a number or a duration goes through this module,
so ``--interval 90s`` and ``--set tcp_fin_timeout=1m30s`` and
``--older-than 1.5m`` read the same way, and every one refuses the same bad
input with the same message.

Grammar (ASCII only; blanks around the text are ignored, none inside)::

    number   = ["-"] digits ["." [digits]] | ["-"] "." digits
    duration = number                      (seconds)
             | ["-"] (number unit)+        units largest first, each once
    unit     = "w" | "d" | "h" | "m" | "min" | "s" | "ms"

There is no exponent (write ``1000``, not ``1e3``), no thousands separator,
no ``+``, and only the digits 0-9 (``int()`` would take ``"١٢"``; this does
not). ``nan`` and ``inf`` are never numbers; a duration may be infinite
only where the caller says "never" means something (``never=True``: the
words ``inf``, ``never``, ``forever``). Every caller states a maximum, so
nothing downstream meets 1e308 or a 40-digit integer (an integer part of
more than :data:`MAX_DIGITS` digits is above every maximum here).

Worked examples:

>>> parse_duration("90", maximum=3600), parse_duration("90s", maximum=3600)
(90.0, 90.0)
>>> parse_duration("1.5m", maximum=3600), parse_duration("1h30m", maximum=1e6)
(90.0, 5400.0)
>>> parse_duration("250ms", maximum=1), parse_duration("2h", maximum=1e6)
(0.25, 7200.0)
>>> parse_duration("-3s", maximum=60)
Traceback (most recent call last):
...
tcplinger.model.units.BadValue: invalid value '-3s' (must not be negative)
>>> parse_duration("1e308", maximum=86400)
Traceback (most recent call last):
...
tcplinger.model.units.BadValue: invalid duration '1e308' (like 90, 90s, 1.5m, 2h, 1h30m or 250ms)
>>> parse_duration("2d", maximum=86400)
Traceback (most recent call last):
...
tcplinger.model.units.BadValue: invalid value '2d' (at most 1d)
>>> parse_count("12", maximum=100), parse_number("0.5", maximum=1)
(12, 0.5)
>>> parse_count("nan", maximum=100)
Traceback (most recent call last):
...
tcplinger.model.units.BadValue: invalid value 'nan' (nan and infinity are not numbers here)
"""

from __future__ import annotations

import math
import numbers
import re

#: a day, the longest sampling interval
DAY = 86400.0
#: ten years: longer than any host keeps a socket or a sample, or a
#: simulation needs to run
LONGEST = 3650 * DAY
#: seconds per unit
UNITS: dict[str, float] = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0,
                           "s": 1.0, "ms": 0.001}
#: digits before the point, at most: 10**15 is above every maximum an option
#: states, and floats hold such integers exactly
MAX_DIGITS = 15
#: longer text is not a number anyone typed on purpose
MAX_LENGTH = 64

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
_PART_RE = re.compile(rf"({_NUMBER})(ms|min|s|m|h|d|w)", re.ASCII)
_NOT_FINITE = {"nan", "inf", "infinity", "-inf", "-infinity", "-nan", "+inf", "+nan",
               "+infinity"}
_NEVER = {"inf", "infinity", "never", "forever"}

DURATION_HINT = "like 90, 90s, 1.5m, 2h, 1h30m or 250ms"


class BadValue(ValueError):
    """A number or duration that does not parse or is out of bounds.

    ``str()`` is the English text; ``key`` and ``fields`` name the catalog
    message (``value.*`` in messages/*/core.toml) so a front end can say it
    in the user's language. ``value`` arrives repr()'d, as the English text
    shows it.

    >>> e = BadValue("value.above", "invalid value {value} (at most {max})", "9", max="5")
    >>> str(e), e.key, e.fields
    ("invalid value '9' (at most 5)", 'value.above', {'value': "'9'", 'max': '5'})
    """

    def __init__(self, key: str, english: str, value, **fields: str):
        self.key = key
        self.fields = {"value": repr(value), **fields}
        super().__init__(english.format(**self.fields))


def spell_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration in this grammar (how error
    messages state a bound); :func:`parse_duration` reads it back.

    >>> spell_duration(86400), spell_duration(5400), spell_duration(0.05), spell_duration(90.5)
    ('1d', '1h30m', '50ms', '1m30.5s')
    >>> spell_duration(0), spell_duration(math.inf)
    ('0s', 'never')
    """
    if math.isinf(seconds):
        return "never"
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    whole, frac = divmod(seconds, 1.0)
    rest, out = int(whole), []
    for unit in ("d", "h", "m"):
        n, rest = divmod(rest, int(UNITS[unit]))
        if n:
            out.append(f"{n}{unit}")
    secs = rest + frac
    if secs or not out:
        out.append(f"{secs:g}s" if frac else f"{rest}s")
    return "".join(out)


def json_seconds(seconds: float | None, places: int = 3) -> float | None:
    """Seconds as JSON carries them: rounded to milliseconds; None stays None.

    >>> json_seconds(1.23456), json_seconds(None), json_seconds(2)
    (1.235, None, 2.0)
    """
    return None if seconds is None else round(float(seconds), places)


def _spell_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _unsigned(text: str) -> float:
    """The value of one unsigned ``number`` of the grammar."""
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(text)
    if len(text.partition(".")[0].lstrip("0")) > MAX_DIGITS:
        return math.inf  # above every maximum
    return float(text)


def _signed(text: str) -> float:
    return -_unsigned(text[1:]) if text.startswith("-") else _unsigned(text)


def _check(value: float, text, *, minimum, maximum, positive: bool, spell) -> None:
    if value < 0 and minimum is not None and minimum >= 0:
        raise BadValue("value.negative", "invalid value {value} (must not be negative)", text)
    if positive and value <= 0:
        raise BadValue("value.not_positive", "invalid value {value} (must be above 0)", text)
    if minimum is not None and value < minimum:
        raise BadValue("value.below", "invalid value {value} (at least {min})", text,
                       min=spell(minimum))
    if maximum is not None and value > maximum:
        raise BadValue("value.above", "invalid value {value} (at most {max})", text,
                       max=spell(maximum))


def _is_number(value) -> bool:
    """A number from TOML/JSON/numpy rather than text (a bool is neither)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _text(value) -> str:
    """The stripped text of a value, refusing what is never a number."""
    if not isinstance(value, str):
        raise BadValue("value.invalid_number", "invalid number {value} (digits, like 12 or 1.5)",
                       value)
    text = str(value).strip().lower()
    if not text:
        raise BadValue("value.empty", "invalid value {value} (empty)", value)
    if text in _NOT_FINITE:
        raise BadValue("value.not_finite",
                       "invalid value {value} (nan and infinity are not numbers here)", value)
    if len(text) > MAX_LENGTH:
        raise BadValue("value.invalid_number", "invalid number {value} (digits, like 12 or 1.5)",
                       value)
    return text


def parse_number(value, *, maximum: float, minimum: float | None = 0.0,
                 positive: bool = False, integer: bool = False) -> float | int:
    """A number from text (or from a TOML/JSON number), within bounds.

    ``minimum`` None allows any negative value; otherwise a negative value
    is refused as such ("must not be negative") when the minimum is 0 or
    more. ``integer`` asks for a whole number (``5.0`` is 5).

    >>> parse_number("1.5", maximum=10), parse_number(" 7 ", maximum=10, integer=True)
    (1.5, 7)
    >>> parse_number("-1", minimum=-1, maximum=600, integer=True)
    -1
    >>> parse_number("5.5", maximum=10, integer=True)
    Traceback (most recent call last):
    ...
    tcplinger.model.units.BadValue: invalid number '5.5' (a whole number, like 12)
    >>> parse_number("1" * 40, maximum=10**9)
    Traceback (most recent call last):
    ...
    tcplinger.model.units.BadValue: invalid value '1111111111111111111111111111111111111111' (at most 1000000000)
    """
    shown = value
    if _is_number(value):
        if not math.isfinite(value):
            raise BadValue("value.not_finite",
                           "invalid value {value} (nan and infinity are not numbers here)", shown)
        number = float(value) if abs(value) < 10 ** MAX_DIGITS else math.copysign(math.inf, value)
    else:
        text = _text(value)
        try:
            number = _signed(text)
        except ValueError:
            if integer:
                raise BadValue("value.invalid_count", "invalid number {value} (a whole number,"
                               " like 12)", shown) from None
            raise BadValue("value.invalid_number", "invalid number {value} (digits, like 12 or"
                           " 1.5)", shown) from None
    _check(number, shown, minimum=minimum, maximum=maximum, positive=positive,
           spell=_spell_number)
    if integer:
        if not number.is_integer():
            raise BadValue("value.invalid_count", "invalid number {value} (a whole number,"
                           " like 12)", shown)
        return int(number)
    return number


def parse_count(value, *, maximum: int, minimum: int | None = 0) -> int:
    """A whole number: :func:`parse_number` with ``integer=True``.

    >>> parse_count("0", maximum=5), parse_count(3, maximum=5)
    (0, 3)
    """
    return parse_number(value, maximum=maximum, minimum=minimum, integer=True)


def parse_duration(value, *, maximum: float, minimum: float = 0.0, positive: bool = False,
                   never: bool = False) -> float:
    """Seconds from a duration (or from a TOML/JSON number of seconds).

    ``never`` lets ``inf``/``never``/``forever`` (and a float infinity)
    stand for "never", where the caller gives that a meaning.

    >>> parse_duration("1h30m", maximum=86400), parse_duration("1m30.5s", maximum=600)
    (5400.0, 90.5)
    >>> parse_duration("never", maximum=600, never=True), parse_duration(7, maximum=60)
    (inf, 7.0)
    >>> parse_duration("30m1h", maximum=86400)
    Traceback (most recent call last):
    ...
    tcplinger.model.units.BadValue: invalid duration '30m1h' (like 90, 90s, 1.5m, 2h, 1h30m or 250ms)
    >>> parse_duration("0", maximum=60, positive=True)
    Traceback (most recent call last):
    ...
    tcplinger.model.units.BadValue: invalid value '0' (must be above 0)
    """
    shown = value
    if never and (value == math.inf or (isinstance(value, str)
                                        and value.strip().lower() in _NEVER)):
        return math.inf
    if _is_number(value):
        seconds = float(parse_number(value, maximum=math.inf, minimum=None))
    else:
        text = _text(value)
        seconds = _duration_text(text, shown)
    _check(seconds, shown, minimum=minimum, maximum=maximum, positive=positive,
           spell=spell_duration)
    return seconds


def _duration_text(text: str, shown) -> float:
    bad = BadValue("value.invalid_duration", "invalid duration {value} (" + DURATION_HINT + ")",
                   shown)
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if sign < 0 else text
    try:
        return sign * _unsigned(body)
    except ValueError:
        pass
    pos, total, last = 0, 0.0, math.inf
    for m in _PART_RE.finditer(body):
        if m.start() != pos:
            raise bad
        scale = UNITS[m.group(2)]
        if scale >= last:  # largest first, each once ("30m1h", "1m1min" are typos)
            raise bad
        total += _unsigned(m.group(1)) * scale
        last, pos = scale, m.end()
    if pos == 0 or body[pos:].strip():
        raise bad
    return sign * total
