"""The conflicts audit of `scaling predict`, `compare` and `plan`: empty values, options that conflict (refused,
never one silently dropped), duplicates once resolved, a `NNNp` height changed silently, "no option fits" with
exit 0, messages that blame the wrong place, and values that start with '-'. Each row: exit 2, one line on
stderr naming the value and the rule (conftest.py ``refused``); the VALID rows are the neighbours that must
still work. The rules live in scaling/settings.py (resolution, CFG and guidance), scaling/app/estimate.py
(region and intensity), scaling/app/planning.py (lists, duplicates, no fit), scaling/app/workload.py (the
file) and scaling/app/cli.py (values that start with '-')."""

from __future__ import annotations

import json

import pytest

WORKLOADS = {
    "regint": "jobs:\n  - model: sdxl\n    count: 10\nregions: [FR]\nintensity: 100\n",
    "intens": "jobs:\n  - model: sdxl\n    count: 10\ngpus: [h100]\nintensity: 100\n",
    "nofit": "jobs:\n  - model: wan2.1-14b\n    precision: fp32\n    count: 10\ngpus: [t4]\n",
    "badregion": "jobs:\n  - model: sdxl\n    count: 10\nregions: [XX]\n",
    "dupgpu": "jobs:\n  - model: sdxl\n    count: 10\ngpus: [h100, h100-sxm]\n",
    "res999": "jobs:\n  - model: wan2.1\n    res: 999p\n    count: 10\ngpus: [h100]\n",
    "offload": "jobs:\n  - model: flux-dev\n    count: 10\ngpus: [l4, t4]\n",
}


@pytest.fixture
def files(paths):
    """The workloads above under {tmp}/NAME.yaml (the ``refused`` fixture expands {tmp})."""
    for name, text in WORKLOADS.items():
        (paths["tmp"] / f"{name}.yaml").write_text(text, encoding="utf-8")
    return paths


REFUSED = [
    # 1. empty values
    (["predict", "-m", "sdxl", "--attention", ""], "argument --attention: `attention` ''"),
    (["predict", "-m", "sdxl", "--attention", "  "], "--attention"),
    (["predict", "-m", "sdxl", "--config", ""], "argument --config: `config` ''"),
    (["profile", "--config", ""], "argument --config"),
    # 2. conflicts: region and intensity, everywhere both are taken
    (["predict", "-m", "sdxl", "--region", "FR", "--intensity", "100"], "`region` 'FR' and `intensity` 100 conflict"),
    (["compare", "-m", "sdxl", "--gpu", "h100", "--region", "FR", "--intensity", "100"],
     "`region` 'FR' and `intensity` 100 conflict"),
    (["report", "-m", "sdxl", "--region", "FR", "--intensity", "50", "--out", "{tmp}/r.html"], "re:region.*intensity"),
    (["plan", "{tmp}/regint.yaml"], "re:regint.yaml:5: `regions` \\['FR'\\] \\(line 4\\) and `intensity` 100 conflict"),
    # ... a fixed value and a list of the same field
    (["compare", "-m", "sdxl", "--steps", "30", "--steps-list", "20,50"], "--steps 30 and --steps-list 20,50 conflict"),
    (["compare", "-m", "sdxl", "--precision", "fp8", "--precisions", "bf16,fp16"],
     "--precision fp8 and --precisions bf16,fp16 conflict"),
    # ... CFG against the guidance (scaling/settings.py make_setting), in every command that makes a setting
    (["predict", "-m", "sdxl", "--no-cfg", "--guidance", "7"], "re:`cfg` off \\(--no-cfg\\) with `guidance` 7"),
    (["profile", "-m", "sdxl", "--no-cfg", "--guidance", "7"], "--no-cfg"),
    (["compare", "-m", "sdxl", "--gpu", "h100", "--no-cfg", "--guidance", "7"], "--no-cfg"),
    (["predict", "-m", "sdxl", "--cfg", "--guidance", "0"], "re:--cfg.*`guidance` 0"),
    # ... an option named twice once resolved
    (["compare", "-m", "sdxl", "--gpu", "h100,h100-sxm"], "--gpu: 'h100' and 'h100-sxm' are one GPU, h100-sxm"),
    (["compare", "-m", "sdxl", "--gpu", "a100,a100-sxm4-40gb"], "'a100' and 'a100-sxm4-40gb' are one GPU"),
    (["compare", "-m", "sdxl", "--precisions", "bf16,BF16"], "'bf16' and 'BF16' are one precision"),
    (["compare", "-m", "sdxl", "--steps-list", "20,20"], "step count 20 is named twice"),
    (["compare", "-m", "sdxl", "--gpu", "h100", "--gpus", "2,2"], "GPU count 2 is named twice"),
    (["plan", "{workload}", "--gpu", "h100,h100-sxm"], "--gpu: 'h100' and 'h100-sxm' are one GPU"),
    (["plan", "{workload}", "--regions", "FR,FRA"], "--regions: 'FR' and 'FRA' are one region"),
    (["plan", "{workload}", "--precisions", "bf16,fp16,BF16"], "--precisions: 'bf16' and 'BF16'"),
    (["plan", "{workload}", "--steps-scale", "1,1"], "steps scale 1 is named twice"),
    (["plan", "{tmp}/dupgpu.yaml"], "re:dupgpu.yaml:4: `gpus`: 'h100' and 'h100-sxm' are one GPU"),
    # 3. NNNp: a named height, or a multiple of the model's; never changed silently
    (["predict", "-m", "wan2.1", "--res", "999p"], "re:`res` '999p': 999 px .*multiple of 16 px: nearest 992p or 1008p"),
    (["profile", "-m", "wan2.1", "--res", "999p"], "999p"),
    (["predict", "-m", "sdxl", "--res", "1001p"], "re:multiple of 8 px: nearest 1000p or 1008p"),
    (["plan", "{tmp}/res999.yaml"], "re:res999.yaml:2: job 1: `res` '999p'"),
    # 4. no option fits, not even with CPU offload: exit 2, as predict
    (["compare", "-m", "wan2.1-14b", "--precision", "fp32", "--gpu", "t4"],
     "re:no option fits.*Wan2.1-T2V-14B.*GiB in fp32 .*GiB with model CPU offload.*t4 \\(16 GiB\\)"),
    (["compare", "-m", "wan2.1-14b", "--precision", "fp32", "--gpu", "t4", "--json"], "no option fits"),
    (["compare", "-m", "sd2.1", "--gpu", "h100", "--batch", "4096"], "re:no option fits.*batch 4096"),
    (["plan", "{tmp}/nofit.yaml"], "re:no option fits.*job 1: .*Wan2.1-T2V-14B.* in fp32 needs .* GiB.*t4 \\(16 GiB\\)"),
    (["plan", "{tmp}/nofit.yaml", "--json"], "no option fits"),
    # 5. the right place: the option, or the key's line
    (["plan", "{workload}", "--regions", "XX"], "re:error: --regions: `region` 'XX'"),
    (["plan", "{workload}", "--precisions", "fp64"], "re:error: --precisions: `precision` 'fp64'"),
    (["plan", "{tmp}/badregion.yaml"], "re:badregion.yaml:4: `regions`: `region` 'XX'"),
    # ... values that start with '-': the option's rule names the option and the value
    (["predict", "-m", "wan2.1", "--res", "-480x832"], "argument --res: `res` '-480x832' is not a resolution"),
    (["predict", "-m", "wan2.1", "--res", "-480p"], "argument --res: `res` '-480p'"),
    (["predict", "-m", "sdxl", "--guidance", "-inf"], "argument --guidance: `guidance` -inf: not a finite number"),
    (["predict", "-m", "sdxl", "--guid", "-inf"], "argument --guidance: `guidance` -inf"),
    (["predict", "-m", "sdxl", "--intensity", "-nan"], "argument --intensity: `intensity` -nan"),
    (["predict", "-m", "sdxl", "--count", "-1e3"], "argument --count: `count` -1e3"),
    (["compare", "-m", "sdxl", "--steps-list", "-5,20"], "argument --steps-list: `steps` -5"),
    (["plan", "{workload}", "--steps-scale", "-1"], "argument --steps-scale: `steps_scale` -1"),
    (["predict", "-m", "sdxl", "--res", "--json"], "argument --res: expected one argument"),  # an option, not a value
    # ... each list its own example
    (["compare", "-m", "sdxl", "--precisions", "bf16,"], "(e.g. bf16,fp8)"),
    (["plan", "{workload}", "--regions", "FR,"], "(e.g. FR,DE)"),
    (["plan", "{workload}", "--precisions", "bf16,"], "(e.g. bf16,fp8)"),
    (["compare", "-m", "sdxl", "--gpu", "h100,"], "(e.g. a100,h100)"),
]


@pytest.mark.parametrize("argv,needle", [pytest.param(a, n, id=" ".join(a)) for a, n in REFUSED])
def test_the_audit_cases_are_refused_in_one_line(argv, needle, refused, files):
    text = refused(argv, needle)
    if argv[0] == "plan" and ("--regions" in argv or "--precisions" in argv):
        assert "job 1" not in text, f"an option of the command line is blamed on a job of the file: {text}"
    if "report" in argv:
        assert not (files["tmp"] / "r.html").exists(), "refused before any work: no report written"


VALID = [
    (["predict", "-m", "wan2.1", "--res", "992p", "--json"], lambda d: (d["setting"]["height"], d["setting"]["width"])
     == (992, 1712)),
    (["predict", "-m", "wan2.1", "--res", "1080p", "--json"], lambda d: d["setting"]["height"] == 1088),  # named
    (["predict", "-m", "sdxl", "--no-cfg", "--json"], lambda d: d["setting"]["cfg"] is False),
    (["predict", "-m", "sdxl", "--no-cfg", "--guidance", "1", "--json"], lambda d: d["setting"]["cfg"] is False),
    (["predict", "-m", "flux-dev", "--cfg", "--json"], lambda d: d["setting"]["cfg"] is True),  # true CFG
    (["predict", "-m", "sdxl-turbo", "--cfg", "--json"], lambda d: d["setting"]["cfg"] is True),  # as ML.ENERGY ran it
    (["predict", "-m", "sdxl", "--region", "FR", "--json"], lambda d: d["intensity_source"].startswith("CodeCarbon")),
    (["predict", "-m", "sdxl", "--intensity", "100", "--json"], lambda d: d["intensity_g_per_kwh"] == 100),
    (["predict", "-m", "wan2.1", "--res=832x480", "--json"], lambda d: d["setting"]["width"] == 832),
]


@pytest.mark.parametrize("argv,check", [pytest.param(a, c, id=" ".join(a)) for a, c in VALID])
def test_the_neighbours_of_the_audit_cases_still_work(argv, check, answered):
    out, _ = answered(argv)
    assert check(json.loads(out)), out[:400]


def test_when_one_option_fits_with_offload_the_others_are_listed_not_refused(answered, files):
    out, _ = answered(["compare", "-m", "flux-dev", "--gpu", "t4,l4"])
    assert "needs CPU offload" in out and "does not fit" in out and "no option fits resident" in out
    out, _ = answered(["plan", "{tmp}/offload.yaml"])
    assert "not ranked" in out and "needs CPU offload" in out


def test_regions_on_the_command_line_replace_the_files_intensity_with_a_note(answered, files):
    out, _ = answered(["plan", "{tmp}/intens.yaml", "--regions", "FR"])
    assert "note: --regions FR replaces the file's `intensity: 100`" in out and "h100-sxm@FR" in out
    data = json.loads(answered(["plan", "{tmp}/intens.yaml", "--regions", "FR", "--json"])[0])
    assert all(c["region"] == "FR" for c in data["candidates"])
    assert all(j["intensity_source"].startswith("CodeCarbon") for j in data["jobs"]), "priced at FR, not at 100"


def test_the_library_refuses_the_same_conflicts():
    import scaling
    from scaling.errors import InvalidSettingError
    from scaling.registry import resolve_model
    from scaling.settings import make_setting, parse_resolution

    for call, match in [
        (lambda: scaling.predict("sd2.1", region="FR", intensity=100.0), "conflict"),
        (lambda: scaling.compare("sd2.1", gpus=["h100", "h100-sxm"]), "one GPU"),
        (lambda: scaling.compare("sd2.1", gpus=["h100"], precisions=["bf16", "fp8"], precision="fp16"), "conflict"),
        (lambda: scaling.compare("sd2.1", gpus=["h100"], step_counts=[20, 50], steps=30), "conflict"),
        (lambda: make_setting("sdxl", cfg=False, guidance=7.0), "no-cfg"),
        (lambda: parse_resolution("999p", resolve_model("wan2.1")), "992p or 1008p"),
    ]:
        with pytest.raises(InvalidSettingError, match=match) as exc:
            call()
        assert "\n" not in str(exc.value)
    assert make_setting("hunyuanvideo", cfg=True).cfg is True, "a guidance-distilled model's true CFG"
    assert make_setting("sdxl", cfg=False).cfg is False, "--no-cfg alone with the default guidance"


def test_a_value_that_starts_with_a_dash_is_given_to_its_option():
    from scaling.app.cli import build_parser, glue_dash_values

    p = build_parser()
    assert glue_dash_values(p, ["predict", "--res", "-480x832"]) == ["predict", "--res=-480x832"]
    assert glue_dash_values(p, ["predict", "--guid", "-inf", "-m", "sdxl"]) == ["predict", "--guid=-inf", "-m", "sdxl"]
    assert glue_dash_values(p, ["predict", "--count", "--json"]) == ["predict", "--count", "--json"]
    assert glue_dash_values(p, ["predict", "--", "--res", "-5"]) == ["predict", "--", "--res", "-5"]
    assert glue_dash_values(p, ["data", "import", "x.csv", "--out", "-1.csv"])[-1] == "--out=-1.csv"
