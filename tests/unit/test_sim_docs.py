"""docs/simulator.md documents every preset, knob and parameter."""

from pathlib import Path

from tcplinger.sim import middleboxes, presets, profiles
from tcplinger.sim.scenario import APP_PARAMS, DROP_PARAMS, HOST_PARAMS, TOP_PARAMS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()


def test_every_parameter_is_documented():
    params = list(TOP_PARAMS + APP_PARAMS + HOST_PARAMS + DROP_PARAMS)
    for name in profiles.names():
        params += profiles.get(name).params + profiles.get(name).socket
    for name in middleboxes.names():
        params += middleboxes.get(name).params
        assert f"`{name}`" in DOC
    missing = sorted({p.name for p in params if f"`{p.name}`" not in DOC})
    assert not missing


def test_every_preset_and_knob_is_documented():
    for p in presets.all_presets():
        assert f"### `{p.name}`" in DOC
        for k in p.knobs:
            assert f"`{k.name}`" in DOC
