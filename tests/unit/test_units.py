"""The one number and duration grammar (model/units.py), and every option
that takes a number or a duration refusing bad values in one line."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcplinger.i18n import Messages
from tcplinger.model import units
from tcplinger.model.params import Param, ParamError
from tcplinger.model.units import BadValue, parse_count, parse_duration, parse_number

TOP = 10 * 86400.0


@pytest.mark.parametrize("text,seconds", [
    ("90", 90), ("90s", 90), ("1.5m", 90), ("2h", 7200), ("1h30m", 5400), ("250ms", 0.25),
    ("1d", 86400), ("1w", 604800), ("5min", 300), ("0", 0), ("0.5", 0.5), ("1.", 1),
    (".5s", 0.5), ("  90s\n", 90), ("1H30M", 5400), ("1m30.5s", 90.5), ("1s500ms", 1.5),
    ("1d2h3m4s5ms", 93784.005), ("007", 7),
])
def test_duration_spellings(text, seconds):
    assert parse_duration(text, maximum=TOP) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("text,key", [
    ("", "value.empty"), ("   ", "value.empty"),
    ("nan", "value.not_finite"), ("NaN", "value.not_finite"), ("inf", "value.not_finite"),
    ("-inf", "value.not_finite"), ("Infinity", "value.not_finite"),
    ("1e3", "value.invalid_duration"), ("1e308", "value.invalid_duration"),
    ("0x10", "value.invalid_duration"), ("1_000", "value.invalid_duration"),
    ("1,5", "value.invalid_duration"), ("+5", "value.invalid_duration"),
    ("--3", "value.invalid_duration"), ("1 h", "value.invalid_duration"),
    ("1h 30m", "value.invalid_duration"), ("30m1h", "value.invalid_duration"),
    ("1m1min", "value.invalid_duration"), ("1s1s", "value.invalid_duration"),
    ("5 minutes", "value.invalid_duration"), ("m", "value.invalid_duration"),
    ("5x", "value.invalid_duration"), ("5m3", "value.invalid_duration"),
    (".", "value.invalid_duration"), ("h1", "value.invalid_duration"),
    ("\u0661\u0662", "value.invalid_duration"),  # Arabic-Indic digits: int() takes them
    ("\uff11\uff12", "value.invalid_duration"),  # fullwidth digits
    ("\u00b2", "value.invalid_duration"),  # superscript two: str.isdigit() says yes
    ("-3s", "value.negative"), ("-1", "value.negative"), ("-0.5m", "value.negative"),
    ("11d", "value.above"), ("1" * 40, "value.above"), ("1" * 40 + "s", "value.above"),
    ("1" * 70, "value.invalid_number"),
])
def test_bad_durations(text, key):
    with pytest.raises(BadValue) as info:
        parse_duration(text, maximum=TOP)
    assert info.value.key == key
    assert Messages("en")(key, **info.value.fields) == str(info.value)


def test_bounds_positive_minimum_and_never():
    with pytest.raises(BadValue, match="must be above 0") as info:
        parse_duration("0s", maximum=TOP, positive=True)
    assert info.value.key == "value.not_positive"
    with pytest.raises(BadValue, match=r"at least 1s\)") as info:
        parse_duration("500ms", maximum=TOP, minimum=1)
    assert info.value.key == "value.below"
    with pytest.raises(BadValue, match=r"at most 50ms\)"):
        parse_duration("0.2", maximum=0.05)
    assert parse_duration("-1", maximum=600, minimum=-1) == -1
    for word in ("inf", "never", "forever", "INF", math.inf):
        assert parse_duration(word, maximum=TOP, never=True) == math.inf
    with pytest.raises(BadValue):
        parse_duration(math.inf, maximum=TOP)
    with pytest.raises(BadValue):
        parse_duration(math.nan, maximum=TOP, never=True)


@pytest.mark.parametrize("value,expected", [
    ("12", 12), (" 7 ", 7), ("5.0", 5), (3, 3), (4.0, 4), ("0", 0), ("007", 7),
])
def test_counts(value, expected):
    got = parse_count(value, maximum=100)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value,key", [
    ("5.5", "value.invalid_count"), ("1e3", "value.invalid_count"), ("x", "value.invalid_count"),
    ("0x10", "value.invalid_count"), ("\u0661", "value.invalid_count"), (True, "value.invalid_number"),
    (None, "value.invalid_number"), ("", "value.empty"), ("nan", "value.not_finite"),
    (math.inf, "value.not_finite"), (float("nan"), "value.not_finite"), ("-1", "value.negative"),
    ("101", "value.above"), (10**40, "value.above"), ("9" * 40, "value.above"),
])
def test_bad_counts(value, key):
    with pytest.raises(BadValue) as info:
        parse_count(value, maximum=100)
    assert info.value.key == key


def test_numbers():
    assert parse_number("0.25", maximum=1) == 0.25
    assert parse_number("-2.5", minimum=None, maximum=1) == -2.5
    with pytest.raises(BadValue, match="at least -1"):
        parse_number("-2", minimum=-1, maximum=1)
    with pytest.raises(BadValue, match="invalid number '1s'"):
        parse_number("1s", maximum=10)


def test_spelling_of_bounds():
    assert [units.spell_duration(s) for s in (86400, 5400, 0.05, 90.5, 0, 3650 * 86400)] == \
        ["1d", "1h30m", "50ms", "1m30.5s", "0s", "3650d"]


# ---- properties of the grammar ----

_UNIT_ORDER = ["w", "d", "h", "m", "s", "ms"]


@st.composite
def durations(draw):
    """A duration as a person types it, and its value in milliseconds."""
    chosen = draw(st.lists(st.sampled_from(_UNIT_ORDER), min_size=1, max_size=6, unique=True))
    chosen.sort(key=_UNIT_ORDER.index)
    text, ms = "", 0
    for unit in chosen:
        n = draw(st.integers(0, 999))
        text += f"{n}{unit}"
        ms += n * int(units.UNITS[unit] * 1000)
    return text, ms


@given(durations())
def test_every_spelt_duration_reads_as_its_sum(case):
    text, ms = case
    assert parse_duration(text, maximum=math.inf) == pytest.approx(ms / 1000, rel=1e-12)
    assert parse_duration(text.upper(), maximum=math.inf) == \
        parse_duration(text, maximum=math.inf)


@given(st.integers(0, 10**12))
def test_bare_numbers_are_seconds_and_spelling_reads_back(ms):
    seconds = ms / 1000
    assert parse_duration(str(ms), maximum=math.inf) == ms
    assert parse_duration(units.spell_duration(seconds), maximum=math.inf) == \
        pytest.approx(seconds, rel=1e-5)


@settings(max_examples=400)
@given(st.text(max_size=30), st.floats(0, 1e9), st.booleans())
def test_any_text_is_a_bounded_value_or_a_bad_value(text, maximum, positive):
    """Nothing but BadValue escapes, and what is returned is within bounds."""
    for parse in (lambda t: parse_duration(t, maximum=maximum, positive=positive),
                  lambda t: parse_number(t, maximum=maximum, positive=positive),
                  lambda t: parse_count(t, maximum=int(maximum))):
        try:
            value = parse(text)
        except BadValue as exc:
            assert exc.key.startswith("value.") and "\n" not in str(exc)
            continue
        assert math.isfinite(value) and 0 <= value <= maximum
        assert text.strip().isascii()


@given(st.text(alphabet="0123456789.-smhdwin ", max_size=12))
def test_text_from_the_grammar_alphabet_never_escapes(text):
    try:
        value = parse_duration(text, maximum=math.inf, minimum=-math.inf)
    except BadValue:
        return
    assert not math.isnan(value)


# ---- parameters read values through the grammar ----

def test_params_take_durations_where_they_count_seconds():
    fin = Param("tcp_fin_timeout", 60, "int", minimum=0, maximum=3600, unit="s")
    assert fin.parse("1m") == 60 and fin.parse(" 90 ") == 90
    with pytest.raises(ParamError, match="whole number"):
        fin.parse("1.5")
    hold = Param("hold", 6.0, "float", minimum=0.5, maximum=3600, unit="s")
    assert hold.parse("1500ms") == pytest.approx(1.5)
    with pytest.raises(ParamError, match=r"hold: invalid value '250ms' \(at least 500ms\)"):
        hold.parse("250ms")
    assert Param("rtt", 0.05, "seconds").parse("20ms") == pytest.approx(0.02)
    with pytest.raises(ParamError, match=r"tw_in_use: invalid value 'inf'"):
        Param("tw_in_use", 0, "count").parse("inf")
    with pytest.raises(ParamError, match=r"at most 2147483647"):
        Param("tw_in_use", 0, "count").parse("1" * 40)
    with pytest.raises(ParamError, match=r"at most 3650d"):
        Param("msl", 30.0, "seconds").parse(1e308)
    assert Param("linger2", 0.0, "seconds").parse("-1") == -1  # negative: RST at close


# ---- every option that takes a number or a duration ----

NUMERIC_OPTIONS = [
    ("ls", "--port"), ("ls", "--sport"), ("ls", "--dport"), ("ls", "--pid"),
    ("ls", "--netns-pid"), ("stats", "--port"),
    ("kill", "--older-than"), ("kill", "--max"), ("kill", "--cookie"), ("kill", "--port"),
    ("watch", "--interval"), ("watch", "--samples"), ("watch", "--full-every"),
    ("watch", "--keep"), ("watch", "--raw-keep"), ("history", "--since"),
    ("report", "--interval"), ("report", "--sockets"), ("report", "--capture"),
    ("check", "--interval"),
    ("top", "--refresh"), ("exporter", "--interval"), ("exporter", "--top-owners"),
    ("exporter", "--top-destinations"), ("exporter", "--listen"),
    ("sim run --preset linux-time-wait", "--horizon"),
    ("sim sweep --preset linux-time-wait --vary tw_in_use=1", "--horizon"),
    ("lab run orphan-fin-wait-2", "--duration"), ("lab run orphan-fin-wait-2", "--interval"),
    ("capture", "--seconds"), ("capture --seconds 1", "--show"), ("pcap x.pcap", "--show"),
]
BAD = ["nan", "inf", "-inf", "-3s", "-1", "1e308", "1" * 40, "", "\u0661\u0662", "5 parsecs"]


@pytest.mark.parametrize("command,option", NUMERIC_OPTIONS)
@pytest.mark.parametrize("value", BAD)
def test_every_numeric_option_refuses_bad_values_in_one_line(cli, command, option, value):
    if option == "--listen":
        value = "127.0.0.1:" + value
    code, out, err = cli(*command.split(), option, value)
    assert code == (3 if command == "check" else 2), err  # check: UNKNOWN, as plugins say
    assert out == "" and err.count("\n") == 1 and option in err, err
    assert "Traceback" not in err and "expected one argument" not in err


@pytest.mark.parametrize("argv,fragment", [
    (["kill", "--older-than", "-3s"], "argument --older-than: invalid value '-3s' (must not be negative)"),
    (["watch", "--keep", "-3s"], "argument --keep: invalid value '-3s' (must not be negative)"),
    (["watch", "--interval", "1e308"], "argument --interval: invalid duration '1e308'"),
    (["watch", "--interval", "2d"], "argument --interval: invalid value '2d' (at most 1d)"),
    (["report", "--threshold", "close-wait-leak.warning_count=nan"], "nan and infinity"),
    (["report", "--threshold", "close-wait-leak.warning_count=" + "1" * 40], "at most 1000000000"),
    (["sim", "run", "--preset", "linux-time-wait", "--set", "tw_in_use=inf"],
     "tw_in_use: invalid value 'inf'"),
    (["sim", "run", "--preset", "linux-time-wait", "--horizon", "inf"], "nan and infinity"),
    (["sim", "sweep", "--preset", "linux-time-wait", "--vary", "tw_in_use=1..1000000:1"],
     "at most 200000"),
    (["lab", "run", "port-exhaustion", "--set", "tcp_tw_reuse_delay=60001"],
     "tcp_tw_reuse_delay: invalid value '60001' (at most 60000)"),
])
def test_refusals_say_why(cli, argv, fragment):
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err, err


def test_the_same_spellings_everywhere():
    """90, 90s, 1.5m: the same value for every duration option."""
    from tcplinger.cli import options
    from tcplinger.diagnose.metadata import parse_override
    from tcplinger.sim.scenario import TOP_PARAMS
    horizon = next(p for p in TOP_PARAMS if p.name == "horizon")
    readers = [options.duration_type(maximum=options.DAY), horizon.parse,
               lambda t: parse_override("close-wait-leak.warning_age=" + t)[2],
               Param("hold", 6.0, "float", minimum=0.5, maximum=3600, unit="s").parse]
    for text in ("90", "90s", "1.5m", "1m30s", "90000ms"):
        assert {read(text) for read in readers} == {90.0}, text
