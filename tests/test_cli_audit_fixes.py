"""The CLI audit's defects, each held by a test through ``scaling.app.cli.main(argv)`` (or a subprocess).

1. ``--prompt-tokens`` reaches every command that takes the setting options (one mapping, ``_common.setting_kwargs``);
2. ``scaling predict --allow-offload`` exists, and what it prints says the offload transfers are not priced;
3. ``scaling fit --help`` lists every law form of ``fits.validation.candidate_laws``, the defaults marked;
4. the label columns of the tables do not wrap mid-word;
5. ``python -m profilers.energy.xdit`` outside torchrun: one line, exit 2, before any work;
6. ``scaling plan`` prints the workload's notes (``count: 1e6``) and carries them in ``PlanResult.notes``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _json(capsys, *argv):
    rc, out, err = _run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def _text_encoder_flop(d: dict) -> float:
    return next(c["flop"] for c in d["components"] if c["role"] == "text_encoder")


# -- 1. --prompt-tokens --------------------------------------------------------------------------

def test_predict_prompt_tokens_reach_the_setting_and_the_text_encoder_flop(capsys):
    default = _json(capsys, "predict", "-m", "wan2.1")
    short = _json(capsys, "predict", "-m", "wan2.1", "--prompt-tokens", "64")
    assert default["setting"]["prompt_tokens"] == 512
    assert short["setting"]["prompt_tokens"] == 64
    assert _text_encoder_flop(short) < _text_encoder_flop(default) / 4  # UMT5 on 64 tokens, not 512
    rc, out, _ = _run(capsys, "predict", "-m", "wan2.1", "--prompt-tokens", "64")
    assert rc == 0 and "64 prompt tokens" in out.splitlines()[1]


@pytest.mark.parametrize("command", [["predict"], ["compare", "--gpu", "h100"], ["profile"]])
def test_fixed_length_model_refuses_other_prompt_tokens(command, capsys):
    rc, out, err = _run(capsys, *command, "-m", "sd1.5", "--prompt-tokens", "100")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "`prompt_tokens` 100 does not apply" in err and "fixed length" in err


def test_compare_prompt_tokens_reach_every_option(capsys):
    rows = _json(capsys, "compare", "-m", "wan2.1", "--gpu", "h100,a100", "--steps-list", "20,50",
                 "--prompt-tokens", "64")
    assert len(rows) == 4 and {r["setting"]["prompt_tokens"] for r in rows} == {64}
    rc, out, _ = _run(capsys, "compare", "-m", "wan2.1", "--gpu", "h100", "--steps-list", "20,50",
                      "--prompt-tokens", "64")
    assert rc == 0 and "64 prompt tokens" in out


def test_predict_baseline_keeps_the_prompt_tokens(capsys):
    d = _json(capsys, "predict", "-m", "wan2.1", "--prompt-tokens", "64", "--steps", "20", "--baseline")
    assert d["baseline"]["setting"]["prompt_tokens"] == 64 and d["baseline"]["setting"]["steps"] == 50


def test_every_setting_option_has_its_make_setting_keyword():
    """The one mapping from the setting options to make_setting: every option of add_setting_args is in it
    (--model, --config and --gpu apart), and every keyword is one make_setting takes."""
    from scaling.app.commands._common import SETTING_KEYWORDS, add_setting_args, setting_kwargs
    from scaling.settings import make_setting

    p = argparse.ArgumentParser()
    add_setting_args(p, with_gpu=True)
    dests = {a.dest for a in p._actions if a.dest != "help"}
    assert dests - {"model", "config", "gpu"} == set(SETTING_KEYWORDS.values())
    assert set(SETTING_KEYWORDS) <= set(inspect.signature(make_setting).parameters)
    args = p.parse_args(["-m", "wan2.1", "--prompt-tokens", "64", "--steps", "20", "--no-cfg"])
    assert setting_kwargs(args) == {"steps": 20, "cfg": False, "batch_size": 1, "outputs_per_prompt": 1,
                                    "prompt_tokens": 64}


# -- 2. --allow-offload -----------------------------------------------------------------------------

def test_predict_refusal_names_an_option_that_exists(capsys):
    rc, out, err = _run(capsys, "predict", "-m", "flux-dev", "--gpu", "l4")
    assert rc == 2 and out == "" and "--allow-offload" in err
    rc, out, _ = _run(capsys, "predict", "--help")
    assert rc == 0 and "--allow-offload" in out
    text = " ".join(out.split())
    assert "GPU-side work alone" in text and "offload transfers" in text and "not priced" in text


def test_predict_allow_offload_prints_an_offloaded_estimate_whose_transfers_are_not_priced(capsys):
    rc, out, err = _run(capsys, "predict", "-m", "flux-dev", "--gpu", "l4", "--allow-offload")
    assert rc == 0, err
    memory = [line for line in out.splitlines() if line.startswith("memory ")]
    assert memory and "OFFLOADED" in memory[0]
    assert "offload transfers are NOT priced" in out and "lower bound" in out
    d = _json(capsys, "predict", "-m", "flux-dev", "--gpu", "l4", "--allow-offload")
    assert d["memory_fit"] == "with model CPU offload" and d["extrapolated"]
    assert any("not modelled" in n for n in d["notes"])


def test_allow_offload_does_not_admit_what_does_not_fit_at_all(capsys):
    rc, out, err = _run(capsys, "predict", "-m", "wan2.1-14b", "--res", "720p", "--gpu", "t4", "--allow-offload")
    assert rc == 2 and out == "" and "even with model CPU offload" in err


# -- 3. scaling fit --help ---------------------------------------------------------------------------

def test_fit_help_lists_every_law_form_and_marks_the_defaults(capsys):
    from fits.validation import PRIMARY_LAW, candidate_laws

    rc, out, _ = _run(capsys, "fit", "--help")
    assert rc == 0
    text = " ".join(out.split())
    listed = text.split("one of ", 1)[1]
    for form in candidate_laws("energy"):
        assert f" {form}," in f" {listed}" or f" {form} (" in f" {listed}", form
    assert f"{PRIMARY_LAW} (the shipped default law's form)" in text
    assert "auto (the default" in text
    assert "hw-\n" not in out  # a form name is never cut at its hyphen


def test_fit_refuses_an_unknown_form_naming_every_form(capsys, tmp_path):
    from fits.validation import candidate_laws

    rc, _, err = _run(capsys, "fit", "--data", str(tmp_path / "runs.csv"), "--law", "hw-nothing")
    assert rc == 2 and "hw-roofline-max+E0" in err
    assert all(f in err for f in candidate_laws("energy"))


# -- 4. label columns do not wrap ---------------------------------------------------------------------

def _whole_on_one_line(label: str, out: str) -> bool:
    return any(label in line for line in out.splitlines())


def test_compare_gpu_counts_labels_stay_on_one_line(capsys):
    argv = ["compare", "-m", "wan2.1-14b", "--gpu", "h100", "--gpus", "1,2,4,8"]
    labels = [r["label"] for r in _json(capsys, *argv)]
    assert "h100-sxm x2 u1r1c2*" in labels
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0
    table = out.split("\n\n")[1]
    assert max(map(len, table.splitlines())) <= 100
    assert all(_whole_on_one_line(label, table) for label in labels)


def test_compare_precision_steps_labels_and_figures_stay_whole(capsys):
    argv = ["compare", "--model", "wan2.1", "--gpu", "a100,h100,l40s", "--precisions", "bf16,fp8",
            "--steps-list", "20,50"]
    labels = [r["label"] for r in _json(capsys, *argv)]
    assert "a100-sxm4-40gb bf16 20 steps" in labels
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0
    table = out.split("\n\n")[1]
    assert max(map(len, table.splitlines())) <= 100
    assert all(_whole_on_one_line(label, table) for label in labels)
    assert not any(line.strip() in ("kJ", "steps") for line in table.splitlines())  # nothing cut before its unit


def test_wide_keeps_every_column_on_one_line(capsys):
    rc, out, _ = _run(capsys, "compare", "-m", "wan2.1-14b", "--gpu", "h100", "--gpus", "1,2", "--wide")
    assert rc == 0
    table = out.split("\n\n")[1]
    assert 100 < max(map(len, table.splitlines())) <= 240
    assert any("h100-sxm x2 u1r1c2*" in line and "NVIDIA H100" in line for line in table.splitlines())


WORKLOAD = """\
jobs:
  - model: wan2.1
    res: 480p
    frames: 81
    count: 1e6
  - name: product videos for the spring campaign
    model: Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    count: 2000
  - model: black-forest-labs/FLUX.1-dev
    count: 2000
gpus: [h100]
regions: [FR]
"""


def test_plan_jobs_table_keeps_models_and_job_words_whole(capsys, tmp_path):
    path = tmp_path / "workload.yaml"
    path.write_text(WORKLOAD, encoding="utf-8")
    rc, out, err = _run(capsys, "plan", str(path))
    assert rc == 0, err
    jobs = out.split("jobs on ", 1)[1].split("\n\n")[0]
    lines = jobs.splitlines()
    assert max(map(len, lines)) <= 100
    for key in ("wan2.1-t2v-1.3b", "flux.1-dev", "1,000,000", "campaign"):
        assert _whole_on_one_line(key, jobs), key
    # an unnamed job is its number (its default name repeats the model id of the next column); a long name
    # wraps at its spaces, never inside a word ("Wan-AI/Wan2.1-T2V-1." / "3B-Diffusers")
    first = [line.split()[0] for line in lines[1:] if line.strip()]
    assert set(first) <= {"job", "-" * 100, "1", "product", "the", "3"}, first
    assert "Diffusers" not in jobs and "black-forest" not in jobs


def test_render_table_labels_never_wrap_and_never_get_cut():
    from scaling.app.commands._out import render_table

    # a table a few characters wider than 100: the text column wraps, the label and the figures do not
    rows = [[1, "h100-sxm fp8 20 steps", "13.9 kJ", "9.5 - 20.1 kJ", "1.00x", "20 s", "resident", "measured"],
            [2, "l40s fp8 20 steps", "17.2 kJ", "11.7 - 25 kJ", "1.24x", "49.8 s", "resident", "never measured"],
            [3, "a100-sxm4-40gb bf16 20 steps", "38.5 kJ", "32.9 - 44.8 kJ", "2.78x", "99.1 s", "resident",
             "never measured"]]
    header = ["#", "option", "energy\nper output", "90%\ninterval", "vs\nbest", "time\nper call", "memory",
              "GPU data"]
    out = render_table(rows, header)
    assert max(map(len, out.splitlines())) <= 100
    for r in rows:
        assert all(_whole_on_one_line(c, out) for c in map(str, r[:6])), r
    assert any(line.strip() == "measured" for line in out.splitlines())  # "never measured" wrapped at its space
    long = "x" * 70 + " " + "y" * 70  # wider than the table may be: wrapped at its space, never cropped
    out = render_table([[long, "1 J"]], ["label", "energy"])
    assert "x" * 70 in out and "y" * 70 in out and "1 J" in out
    assert max(map(len, out.splitlines())) <= 100
    longer = "z" * 150  # one word wider than the table: folded over two lines, every character kept
    out = render_table([[longer, "1 J"]], ["label", "energy"])
    assert "".join(out.split()).count("z") == 150 and max(map(len, out.splitlines())) <= 100


# -- 5. xDiT outside torchrun ---------------------------------------------------------------------

def test_xdit_outside_torchrun_is_one_line_and_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "x.parquet"
    proc = subprocess.run([sys.executable, "-m", "profilers.energy.xdit", "--model", "wan2.1", "--parallel",
                           "ulysses=2,ring=1", "--weights", str(tmp_path / "weights"), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "RANK is not set" in lines[0] and "torchrun" in lines[0]
    assert proc.stdout == "" and not out.exists()


def test_xdit_main_refuses_before_any_work(monkeypatch, capsys):
    from profilers.energy import xdit

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)

    def no_work(*a, **k):
        raise AssertionError("work started before the torchrun check")

    monkeypatch.setattr(xdit, "resolve_model", no_work)
    monkeypatch.setattr(xdit, "import_xfuser", no_work)
    rc = xdit.main(["--model", "wan2.1", "--parallel", "ulysses=2,ring=1", "--weights", "w", "--out", "x.parquet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("profilers.energy.xdit: error: ") and "RANK" in err


# -- 6. the workload's notes --------------------------------------------------------------------------

def test_plan_prints_and_carries_the_workload_notes(capsys, tmp_path):
    from scaling.app.planning import plan

    path = tmp_path / "workload.yaml"
    path.write_text(WORKLOAD, encoding="utf-8")
    res = plan(path)
    assert any("1,000,000" in n and "count" in n for n in res.notes)
    rc, out, _ = _run(capsys, "plan", str(path))
    assert rc == 0
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "1,000,000" in notes[0]
    d = _json(capsys, "plan", str(path))
    assert d["notes"] == res.notes


def test_plan_of_a_workload_without_reread_values_has_no_notes(capsys, tmp_path):
    path = tmp_path / "workload.yaml"
    path.write_text(WORKLOAD.replace("count: 1e6", "count: 1000000"), encoding="utf-8")
    rc, out, _ = _run(capsys, "plan", str(path))
    assert rc == 0 and "note: " not in out


def test_plan_of_the_docs_example_notes_its_count(capsys):
    example = ROOT / "docs" / "examples" / "workload.yaml"
    rc, out, _ = _run(capsys, "plan", str(example))
    assert rc == 0
    assert any(line.startswith("note: ") and "1,000,000" in line for line in out.splitlines())


def test_measure_refuses_prompt_tokens_before_any_work(tmp_path, capsys):
    out = tmp_path / "m.parquet"
    rc, _, err = _run(capsys, "measure", "-m", "tiny:sd", "--device", "cpu", "--meter", "estimate",
                      "--prompt-tokens", "64", "--out", str(out))
    err = err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "--prompt-tokens 64" in err and "shipped prompts" in err
    assert list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.parametrize("command", ["predict", "profile"])
def test_an_empty_attention_variant_is_refused(command, capsys):
    rc, _, err = _run(capsys, command, "-m", "sdxl", "--attention", "")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "must not be empty" in err


def test_forced_cfg_without_a_scale_is_shown_as_forced(capsys):
    rc, out, err = _run(capsys, "predict", "-m", "sdxl-turbo", "--cfg")
    assert rc == 0, err
    assert "CFG forced" in out and "CFG 0" not in out


@pytest.mark.parametrize("option", [["--partition", "foo"], ["--settings-per-job", "3"], ["--logs", "nodir/logs"],
                                    ["--time-min", "5"], ["--array-parallelism", "2"]])
def test_local_sweep_refuses_the_submitit_options(option, tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("device: cpu\nmeter: estimate\ngrid:\n  - model: tiny:sd\n    steps: [1]\n", encoding="utf-8")
    rc, _, err = _run(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o.parquet"), *option)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"{option[0]} applies to --executor slurm" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"], "nothing written"


@pytest.mark.parametrize("argv, expected", [
    (["-m", ","], "`model` ','"),
    (["-m", "sdxl", "--title", ""], "`title` ''"),
    (["--gpus", "h100,h100"], "--gpus: GPU 'h100' is named twice"),
    (["--gpus", "h100,h100-sxm"], "--gpus: 'h100' and 'h100-sxm' are one GPU"),
])
def test_report_refuses_empty_names_and_repeated_gpus_before_any_work(argv, expected, tmp_path, capsys):
    rc, _, err = _run(capsys, "report", *argv, "--out", str(tmp_path / "r.html"))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_report_models_may_be_repeated_or_comma_separated():
    from scaling.app.commands.report import _csv

    assert _csv([["sdxl"], ["wan2.1", "audioldm2"]]) == ["sdxl", "wan2.1", "audioldm2"] and _csv(None) is None


def test_a_table_too_wide_for_a_clean_layout_wraps_least():
    from scaling.app.commands._out import render_table

    names = ["ByteDance/AnimateDiff-Lightning", "Lightricks/LTX-Video-0.9.7-dev", "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
             "stabilityai/stable-diffusion-3-medium-diffusers"]  # the pareto table that folded letter by letter
    rows = [[n, 20, 32, "856 J", "24.14", 59, "yes", "yes" if i % 2 else ""] for i, n in enumerate(names)]
    header = ["model", "steps", "batch", "energy\nper output", "duration_s", "runs", "model\nfront", "global\nfront"]
    text = render_table(rows, header)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    assert any("front" in line for line in lines) and sum("yes" in line for line in lines) >= 4, text
    assert not any(line.strip() in ("y", "ye", "s", "fr", "on") for line in lines), "no word folded letter by letter"
