"""How a simulation reads (``tcplinger sim``): its events, the verdict, a
sweep's table and chart. Renderers only: the results come from sim/ as
plain objects (the layering test keeps ui/ from importing sim/)."""

from __future__ import annotations

import math

from ..model.states import name as state_name, parse_state
from . import timeline as tl_view
from .table import render


def event_lines(notes, msg) -> list[str]:
    """One line per event; a run of the same event (a middlebox's periodic
    keepalives) is shown once with how often it repeats."""
    out = []
    i = 0
    notes = list(notes)
    while i < len(notes):
        n = notes[i]
        j = i
        while j + 1 < len(notes) and (notes[j + 1].party, notes[j + 1].key, notes[j + 1].fields) \
                == (n.party, n.key, n.fields):
            j += 1
        out.append(f"  {tl_view.fmt_s(n.t_s):>9}  {n.party:<8} " + msg(n.key, **n.field_dict()))
        if j > i:
            out.append(" " * 22 + msg("sim.repeated", n=j - i, last=tl_view.fmt_s(notes[j].t_s)))
        i = j + 1
    return out


def verdict_lines(v, sc, msg) -> list[str]:
    lines = [msg("sim.verdict_heading")]
    rows = []
    for party, states in v.lifetimes.items():
        for state, secs in states.items():
            rows.append([party, state, tl_view.fmt_s(secs) if secs is not None
                         else msg("sim.still_held")])
    for line in render([msg("sim.col.party"), msg("sim.col.state"), msg("sim.col.held")], rows,
                       align="llr"):
        lines.append("  " + line)
    for party, secs in v.lingering.items():
        if secs is not None:
            lines.append("  " + msg("sim.verdict.lingered", party=party, held=tl_view.fmt_s(secs)))
    if v.first is None:
        lines.append("  " + msg("sim.verdict.nobody_forgets",
                                horizon=tl_view.fmt_s(sc.horizon_s)))
    else:
        lines.append("  " + msg("sim.verdict.first", party=v.first, at=tl_view.fmt_s(v.first_at)))
        np_ = v.next_packet
        if np_ is None:
            lines.append("  " + msg("sim.verdict.no_next_packet"))
        elif np_.get("fate") == "not_sent":
            lines.append("  " + msg("sim.verdict.cannot_send", party=np_["from"]))
        else:
            what = msg("sim.packet_kind." + np_.get("kind", "ack"))
            base = dict(party=np_["from"], what=what, at=tl_view.fmt_s(np_["at_s"]),
                        state=np_.get("state") or "-")
            if np_.get("fate") == "dropped" and np_.get("reply") and "R" in np_["reply"]:
                lines.append("  " + msg("sim.verdict.next_reset_by", by=np_["by"], **base))
            elif np_.get("fate") == "dropped":
                lines.append("  " + msg("sim.verdict.next_dropped", by=np_["by"], **base))
            elif np_.get("reply") and "R" in np_["reply"]:
                lines.append("  " + msg("sim.verdict.next_reset", peer=np_["by"], **base))
            elif np_.get("reply"):
                lines.append("  " + msg("sim.verdict.next_answered", peer=np_["by"],
                                        reply=np_["reply"], **base))
            else:
                lines.append("  " + msg("sim.verdict.next_silent", peer=np_["by"], **base))
    if v.held:
        held = ", ".join(f"{p} ({state_name(_last_state(v, p))})" for p in v.held)
        lines.append("  " + msg("sim.verdict.held", parties=held,
                                horizon=tl_view.fmt_s(sc.horizon_s)))
    return lines


def _last_state(v, party):
    held = [s for s, secs in v.lifetimes[party].items() if secs is None]
    return parse_state(held[-1]) if held else 0


def held_at_horizon(result, party, i) -> bool:
    """Still held at the horizon (as opposed to never entering teardown)."""
    return math.isnan(result.forgotten[party][i]) and any(
        math.isnan(col[i]) for col in result.states[party].values())


def value_text(v) -> str:
    """A parameter's value as typed (``30``, ``0.5``, ``linux``)."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def sweep_chart(result, keys, name, msg) -> str:
    """An SVG chart: x the first varied key, one line per party and per
    combination of the other keys."""
    x_key = keys[0]
    others = keys[1:]
    try:
        xs_all = [float(v) for v in result.values[x_key]]
    except ValueError:
        xs_all = list(range(len(result)))
    groups: dict[tuple, list[int]] = {}
    for i in range(len(result)):
        groups.setdefault(tuple(result.values[k][i] for k in others), []).append(i)
    series = {}
    xs = None
    for combo, idx in groups.items():
        suffix = "" if not others else " (" + ", ".join(
            f"{k}={value_text(v)}" for k, v in zip(others, combo)) + ")"
        order = sorted(idx, key=lambda i: xs_all[i])
        xs = [xs_all[i] for i in order]
        for p in result.parties:
            col = result.lingering[p] if p in ("client", "server") else result.forgotten[p]
            vals = []
            for i in order:
                x = col[i]
                if not math.isnan(x):
                    vals.append(float(x))
                else:  # None: held at the horizon; NaN: never tore down
                    vals.append(None if held_at_horizon(result, p, i) else math.nan)
            if all(v is not None and math.isnan(v) for v in vals):
                continue
            series[p + suffix] = vals
    return tl_view.render_chart_svg(xs or [], series, x_key, msg("sim.chart_y"), title=name,
                                    held_label=msg("sim.held_short"))


def sweep_lines(result, keys, msg) -> list[str]:
    """A sweep as a table: the varied values, then how long each endpoint
    lingers and when each middlebox forgets, one row per point."""
    endpoint_parties = [p for p in result.parties if p in ("client", "server")]
    boxes = [p for p in result.parties if p not in ("client", "server")]
    headers = keys + [msg("sim.col.lingers", party=p) for p in endpoint_parties] + \
        [msg("sim.col.forgets", party=p) for p in boxes]
    rows = []
    held = msg("sim.held_short")
    for i in range(len(result)):
        row = [value_text(result.values[k][i]) for k in keys]
        for p in endpoint_parties:
            x = result.lingering[p][i]
            if not math.isnan(x):
                row.append(tl_view.fmt_s(x))
            else:
                row.append(held if held_at_horizon(result, p, i) else "-")
        for p in boxes:
            x = result.forgotten[p][i]
            row.append(held if math.isnan(x) else tl_view.fmt_s(x))
        rows.append(row)
    lines = render(headers, rows, align="r" * len(headers))
    return lines + [msg("sim.sweep_footer", n=len(result))]
