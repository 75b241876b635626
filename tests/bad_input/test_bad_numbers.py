"""Numbers on the command line: finite, in range, whole where a count is meant (scaling/app/commands/_common.py).

Every numeric flag of every subcommand meets the same bad values; argparse refuses them before
any work, in one line naming the flag. The valid forms (``1e6`` for a million, ``1_000``) give
the right answer.
"""

from __future__ import annotations

import json

import pytest

BAD_WHOLE = ["0", "-1", "2.5", "nan", "inf", "-inf", "1e400", "10**400", "abc", "", "0x10", "1,000"]
BAD_POSITIVE = ["0", "-1", "nan", "inf", "1e400", "abc", "", "100000"]
BAD_NONNEGATIVE = ["-1", "nan", "inf", "abc", "1e9"]

SETTING_COMMANDS = {
    "profile": ["profile", "-m", "wan2.1"],
    "predict": ["predict", "-m", "wan2.1"],
    "compare": ["compare", "-m", "wan2.1", "--gpu", "h100"],
    "measure": ["measure", "-m", "tiny:wan", "--device", "cpu", "--out", "{tmp}/runs.parquet"],
}

CASES = []
for cmd, base in SETTING_COMMANDS.items():
    for flag in ("--frames", "--steps", "--batch", "--outputs-per-prompt"):
        for v in BAD_WHOLE:
            CASES.append(pytest.param(base + [flag, v], flag, id=f"{cmd} {flag} {v!r}"))
    for v in BAD_POSITIVE:
        CASES.append(pytest.param(base + ["--seconds", v], "--seconds", id=f"{cmd} --seconds {v!r}"))
    for v in BAD_NONNEGATIVE:
        CASES.append(pytest.param(base + ["--guidance", v], "--guidance", id=f"{cmd} --guidance {v!r}"))

for v in BAD_WHOLE + ["1e16"]:
    CASES.append(pytest.param(["predict", "-m", "sd2.1", "--count", v], "--count", id=f"predict --count {v!r}"))
for cmd, base in {"predict": ["predict", "-m", "sd2.1"], "compare": ["compare", "-m", "sd2.1"],
                  "report": ["report", "--out", "{tmp}/r.html"]}.items():
    for v in ["0.5", "0", "-1", "6", "nan", "inf", "abc", ""]:
        CASES.append(pytest.param(base + ["--pue", v], "--pue", id=f"{cmd} --pue {v!r}"))
    for v in ["-3", "nan", "inf", "1e9", "abc", ""]:
        CASES.append(pytest.param(base + ["--intensity", v], "--intensity", id=f"{cmd} --intensity {v!r}"))
for v in ["0", "1", "-1", "nan", "abc", "2.5", "1e400", ""]:
    CASES.append(pytest.param(["fit", "--data", "{runs}", "--n-splits", v], "--n-splits", id=f"fit --n-splits {v!r}"))
for v in ["20,abc", "nan", "20,,50", "", "0", "1e400", "20,2.5", "20,-5", ",", "20;50"]:
    CASES.append(pytest.param(["compare", "-m", "sd2.1", "--steps-list", v], "--steps-list",
                              id=f"compare --steps-list {v!r}"))
for v in ["1,abc", "nan", "0", "-1", "inf", "", "1,,2", "1e400", "1000"]:
    CASES.append(pytest.param(["plan", "{workload}", "--steps-scale", v], "--steps-scale",
                              id=f"plan --steps-scale {v!r}"))
MEASURE = SETTING_COMMANDS["measure"]
for flag, values in {"--repeats": ["0", "-1", "2.5", "nan", "abc"], "--warmup": ["-1", "2.5", "nan", "abc"],
                     "--idle-s": ["-1", "nan", "inf", "abc", "1e9"], "--seed": ["-1", "2.5", "abc", "1e400"],
                     "--cpu-power-w": ["0", "-5", "nan", "inf", "abc"]}.items():
    for v in values:
        CASES.append(pytest.param(MEASURE + [flag, v], flag, id=f"measure {flag} {v!r}"))
for flag, values in {"--settings-per-job": ["0", "-1", "abc", "nan"], "--time-min": ["0", "-5", "2.5", "abc"],
                     "--array-parallelism": ["0", "-1", "abc"]}.items():
    for v in values:
        CASES.append(pytest.param(["sweep", "{sweep}", flag, v], flag, id=f"sweep {flag} {v!r}"))


@pytest.mark.parametrize("argv,needle", CASES)
def test_a_bad_number_is_refused_in_one_line(argv, needle, refused):
    refused(argv, needle)


def test_the_count_reads_1e6_as_a_million_outputs(answered):
    out, _ = answered(["predict", "-m", "sd2.1", "--count", "1e6"])
    assert "1,000,000 outputs" in out
    out, _ = answered(["predict", "-m", "sd2.1", "--count", "1_000"])
    assert "1,000 outputs" in out
    a, _ = answered(["predict", "-m", "sd2.1", "--count", "1e6", "--json"])
    b, _ = answered(["predict", "-m", "sd2.1", "--count", "1000000", "--json"])
    assert json.loads(a) == json.loads(b)


def test_one_step_is_one_step_and_batches_say_per_call_and_per_output(answered):
    out, _ = answered(["predict", "-m", "sd2.1", "--steps", "1"])
    assert "1 step," in out and "1 steps" not in out
    out, _ = answered(["predict", "-m", "sd2.1", "--batch", "4"])
    assert "per call" in out and "per output" in out and "4 outputs per call" in out
    data = json.loads(answered(["predict", "-m", "sd2.1", "--batch", "4", "--json"])[0])
    assert data["energy_per_output_j"] == pytest.approx(data["energy_j"] / 4)


def test_a_batch_in_range_that_does_not_fit_is_refused_by_the_memory_check(refused):
    refused(["predict", "-m", "sd2.1", "--batch", "4096"], "re:GiB|memory")


@pytest.mark.parametrize("argv,check", [
    (["predict", "-m", "audioldm2", "--seconds", "5.5", "--json"], lambda d: d["setting"]["audio_seconds"] == 5.5),
    (["predict", "-m", "sd2.1", "--guidance", "0", "--json"], lambda d: d["setting"]["cfg"] is False),
    (["predict", "-m", "sd2.1", "--guidance", "1e2", "--json"], lambda d: d["setting"]["guidance_scale"] == 100),
    (["predict", "-m", "sd2.1", "--intensity", "0", "--json"], lambda d: d["co2e_g"] == 0),
    (["predict", "-m", "sd2.1", "--pue", "1.5", "--intensity", "100", "--json"], lambda d: d["pue"] == 1.5),
    (["predict", "-m", "sd2.1", "--steps", "2e1", "--json"], lambda d: d["setting"]["steps"] == 20),
    (["predict", "-m", "sd2.1", "--batch", "16", "--outputs-per-prompt", "2", "--json"],
     lambda d: d["setting"]["batch_size"] == 16 and d["energy_per_output_j"] == pytest.approx(d["energy_j"] / 32)),
    (["compare", "-m", "sd2.1", "--gpu", "h100", "--steps-list", "20, 50", "--json"],
     lambda d: sorted(r["setting"]["steps"] for r in d) == [20, 50]),
    (["plan", "{workload}", "--steps-scale", "1,0.5", "--json"], lambda d: len(d["candidates"]) == 2),
])
def test_valid_numbers_give_the_right_answer(argv, check, answered):
    out, _ = answered(argv)
    assert check(json.loads(out)), out[:500]
