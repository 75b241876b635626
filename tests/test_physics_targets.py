"""benchmarks/physics_targets.py: every issue-16 target comes out, with a verdict and a finite figure.

The values are not asserted (a target may be MISSED; the script says so): only the structure.
"""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

EXPECTED = (
    "energy_model_out", "energy_gpu_out", "energy_config_kfold",
    "time_model_out", "time_gpu_out", "time_config_kfold",
    "litefocus_10s", "litefocus_20s", "litefocus_40s", "litefocus_80s",
    "batch_whatif", "wan_frames", "wan_resolution", "wan_steps", "interval_coverage",
)


@pytest.mark.slow
def test_physics_targets_json_has_every_target(tmp_path, capsys):
    import physics_targets

    out = tmp_path / "targets.json"
    assert physics_targets.main(["--json", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["form"] == json.loads((ROOT / "scaling" / "_laws" / "default.json").read_text())["form"]
    names = [t["name"] for t in res["targets"]]
    assert sorted(names) == sorted(EXPECTED)
    for t in res["targets"]:
        assert isinstance(t["met"], bool), t["name"]
        assert isinstance(t["achieved"], float) and math.isfinite(t["achieved"]), t["name"]
        assert t["op"] in ("<=", "within"), t["name"]
        assert t["target"] and isinstance(t["note"], str), t["name"]
    assert res["met"] == sum(t["met"] for t in res["targets"]) and res["total"] == len(EXPECTED)
    assert printed.count("\n") >= len(EXPECTED)
