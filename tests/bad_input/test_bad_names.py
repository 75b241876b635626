"""Names: models, GPUs, regions, precisions, policies, meters, devices, countries, law forms, metrics."""

from __future__ import annotations

import pytest


def needs_torch() -> None:
    """measure and sweep need the [torch] extra; looked up, not imported (an import costs seconds)."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        pytest.skip("needs the [torch] extra")

MODEL_COMMANDS = {"profile": ["profile"], "predict": ["predict"], "compare": ["compare", "--gpu", "h100"]}
BAD_MODELS = [("nope", "unknown model 'nope'"), ("wan2.1x", "unknown model"), (" ", "model"),
              ("../../etc/passwd", "unknown model"), ("", "model")]

CASES = [pytest.param(base + ["-m", name], needle, id=f"{cmd} -m {name!r}")
         for cmd, base in MODEL_COMMANDS.items() for name, needle in BAD_MODELS]
CASES += [pytest.param(base, "no model given", id=f"{cmd} without a model") for cmd, base in MODEL_COMMANDS.items()]
CASES += [
    pytest.param(["report", "-m", "nope", "--out", "{tmp}/r.html"], "nope", id="report -m nope"),
    pytest.param(["report", "-m", "", "--out", "{tmp}/r.html"], "--model", id="report -m ''"),
]
for cmd, base in {"profile": ["profile", "-m", "sd2.1"], "predict": ["predict", "-m", "sd2.1"]}.items():
    for name, needle in [("nope", "unknown GPU 'nope'"), ("tpu-v5", "unknown GPU"), ("", "--gpu"),
                         ("h100,a100", "unknown GPU")]:
        CASES.append(pytest.param(base + ["--gpu", name], needle, id=f"{cmd} --gpu {name!r}"))
for text, needle in [("a100,nope", "unknown GPU 'nope'"), ("a100,,h100", "--gpu"), (",", "--gpu"), ("", "--gpu")]:
    CASES.append(pytest.param(["compare", "-m", "sd2.1", "--gpu", text], needle, id=f"compare --gpu {text!r}"))
    CASES.append(pytest.param(["plan", "{workload}", "--gpu", text], needle, id=f"plan --gpu {text!r}"))
    CASES.append(pytest.param(["report", "--gpus", text, "--out", "{tmp}/r.html"], "re:gpu", id=f"report --gpus {text!r}"))
CASES.append(pytest.param(["report", "--gpu", "nope", "--out", "{tmp}/r.html"], "unknown GPU", id="report --gpu nope"))
for cmd, base in {"predict": ["predict", "-m", "sd2.1"], "compare": ["compare", "-m", "sd2.1", "--gpu", "h100"],
                  "report": ["report", "--out", "{tmp}/r.html"]}.items():
    for region, needle in [("XX", "`region` 'XX'"), ("", "region"), ("123", "region"), ("FRANCE", "region")]:
        CASES.append(pytest.param(base + ["--region", region], needle, id=f"{cmd} --region {region!r}"))
for text, needle in [("FR,XX", "'XX'"), (",", "--regions"), ("", "--regions")]:
    CASES.append(pytest.param(["plan", "{workload}", "--regions", text], needle, id=f"plan --regions {text!r}"))
for text, needle in [("bf16,fp7", "fp7"), (",", "--precisions"), ("", "--precisions")]:
    CASES.append(pytest.param(["compare", "-m", "sd2.1", "--gpu", "h100", "--precisions", text], needle,
                              id=f"compare --precisions {text!r}"))
    CASES.append(pytest.param(["plan", "{workload}", "--precisions", text], needle, id=f"plan --precisions {text!r}"))
CASES.append(pytest.param(["report", "--precision", "fp7", "--out", "{tmp}/r.html"], "fp7", id="report --precision fp7"))
for policy, needle in [("bogus=mark", "policy 'bogus' is unknown"), ("first_call=explode", "not allowed"),
                       ("nonsense", "NAME=ACTION"), ("=", "NAME=ACTION"), ("first_call=", "first_call")]:
    CASES.append(pytest.param(["data", "inspect", "{csv}", "--policy", policy], needle, id=f"inspect --policy {policy!r}"))
    CASES.append(pytest.param(["data", "import", "{csv}", "--out", "{tmp}/r.parquet", "--policy", policy], needle,
                              id=f"import --policy {policy!r}"))
for law, needle in [("nonsense", "unknown law 'nonsense'"), ("", "--law"), ("POWER", "unknown law")]:
    CASES.append(pytest.param(["fit", "--data", "{runs}", "--law", law], needle, id=f"fit --law {law!r}"))
for metric, needle in [("nope", "no rows for metric 'nope'"), ("", "--quality")]:
    CASES.append(pytest.param(["pareto", "--data", "{runs}", "--quality", metric, "--quality-table", "{quality}"],
                              needle, id=f"pareto --quality {metric!r}"))
CASES.append(pytest.param(["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "{quality}",
                           "--dataset", "nope"], "nope", id="pareto --dataset nope"))


@pytest.mark.parametrize("argv,needle", CASES)
def test_an_unknown_name_is_refused_in_one_line(argv, needle, refused):
    refused(argv, needle)


MEASURE = ["measure", "-m", "tiny:sd", "--out", "{tmp}/runs.parquet", "--quiet"]


@pytest.mark.parametrize("extra,needle", [
    (["--meter", "nvlm"], "`meter` 'nvlm' is unknown"),
    (["--meter", "replay:"], "names no trace"),
    (["--meter", "replay:/nonexistent/trace.csv"], "no trace file"),
    (["--meter", ""], "--meter"),
    (["--device", "tpu"], "`device` 'tpu' is unknown"),
    (["--device", ""], "--device"),
    (["--device", "cuda:99"], "cuda:99"),
    (["--country", "XX", "--device", "cpu"], "XX"),
    (["--country", "FRANCE", "--device", "cpu"], "FRANCE"),
    (["--allow-pickle", "--device", "cpu"], "--weights"),
])
def test_measure_refuses_a_bad_meter_device_or_country_before_building(extra, needle, refused, paths):
    needs_torch()
    refused(MEASURE + extra, needle)
    assert not (paths["tmp"] / "runs.parquet").exists()


@pytest.mark.parametrize("extra,needle", [
    (["--meter", "nvlm"], "`meter` 'nvlm' is unknown"),
    (["--meter", "replay:"], "names no trace"),
    (["--device", "tpu"], "`device` 'tpu' is unknown"),
    (["--device", "cuda:99"], "cuda:99"),
])
def test_sweep_refuses_a_bad_meter_or_device_before_any_setting_runs(extra, needle, refused, paths):
    needs_torch()
    refused(["sweep", "{sweep}", "--out", "{tmp}/runs.parquet", "--no-progress"] + extra, needle)
    assert not (paths["tmp"] / "runs.parquet").exists()


@pytest.mark.parametrize("argv,needle", [
    (["predict", "-m", "wan2.1", "--gpu", "a100", "--json"], "a100"),
    (["predict", "-m", "sd2.1", "--gpu", "NVIDIA H100 80GB HBM3", "--json"], "h100"),
    (["predict", "-m", "sd2.1", "--region", "fr", "--json"], "France"),
    (["predict", "-m", "sd2.1", "--region", "FRA", "--json"], "France"),
])
def test_valid_names_resolve(argv, needle, answered):
    out, _ = answered(argv)
    assert needle in out
