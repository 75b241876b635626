"""`scaling data`, `scaling fit`, `scaling pareto` and law files: the cases of the bad-input audit.

The rule: bad input gets one line on stderr naming the value and the rule, exit 2, before any work,
nothing written; an option that cannot apply to the input is refused, not ignored. Each case is a
row; ``{name}`` in an argument is a file of the ``paths`` fixture below (the conftest's, plus the
audit's bad tables and law files, made once per module).
"""

from __future__ import annotations

import copy
import json
import re
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from disk import disk_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT / "datasets" / "public"

EMISSIONS = ("timestamp,project_name,run_id,duration,emissions,energy_consumed,cpu_energy,gpu_energy,ram_energy\n"
             "2024-01-01T00:00:00,p,r1,10.0,0.001,0.002,0.0005,0.001,0.0005\n")


@pytest.fixture(scope="module")
def audit_files(shared_files, tmp_path_factory) -> dict[str, Path]:
    """The audit's inputs: bad tables, bad law files, small tables to fit (read-only for the cases)."""
    from scaling.runs import read_runs, write_runs

    base = tmp_path_factory.mktemp("data-fit-audit")
    runs = read_runs(shared_files["runs"])
    public = read_runs(PUBLIC / "runs.parquet")
    files = {name: base / name for name in (
        "empty.parquet", "garbage.parquet", "header_only.csv", "zero_rows.parquet", "emissions.csv", "law_form.json",
        "law_noform.json", "unk_model.parquet", "unk_gpu.parquet", "one_nan.parquet", "no_energy.parquet",
        "no_energy_csv.csv", "by_model.parquet", "by_model_none.parquet", "few_settings.parquet")}
    files["empty.parquet"].write_bytes(b"")
    files["garbage.parquet"].write_text("this is not parquet\n", encoding="utf-8")
    files["header_only.csv"].write_text(",".join(runs.columns) + "\n", encoding="utf-8")
    write_runs(runs.head(0), files["zero_rows.parquet"])
    files["emissions.csv"].write_text(EMISSIONS, encoding="utf-8")
    law = json.loads(shared_files["law"].read_text(encoding="utf-8"))
    files["law_form.json"].write_text(json.dumps({**law, "form": "nonsense"}), encoding="utf-8")
    files["law_noform.json"].write_text(json.dumps({k: v for k, v in law.items() if k != "form"}), encoding="utf-8")
    write_runs(runs.assign(model="nosuch/model", model_key="nosuch/model"), files["unk_model.parquet"])
    write_runs(runs.assign(gpu="NoSuch GPU", gpu_key="nosuchgpu"), files["unk_gpu.parquet"])
    one_nan = runs.copy()
    one_nan.loc[one_nan.index[3], "energy_gpu_j"] = float("nan")
    write_runs(one_nan, files["one_nan.parquet"])
    import pyarrow.parquet as pq

    table = pq.read_table(shared_files["runs"])  # its metadata (the schema version) kept: a table without the column
    pq.write_table(table.drop_columns(["energy_gpu_j"]), files["no_energy.parquet"])
    runs.drop(columns=["energy_gpu_j"]).to_csv(files["no_energy_csv.csv"], index=False)
    total = public[(public["phase"] == "total") & public["flop"].notna()]
    sd21 = total[total["model"] == "stabilityai/stable-diffusion-2-1"]
    single = total[total["model"] == "ByteDance/AnimateDiff-Lightning"]  # one distinct setting in the public data
    single2 = total[total["model"] == "Lightricks/LTX-Video-0.9.7-dev"]
    write_runs(pd.concat([sd21, single.head(5)], ignore_index=True), files["by_model.parquet"])
    write_runs(pd.concat([single.head(5), single2.head(5)], ignore_index=True), files["by_model_none.parquet"])
    few = public[public["source"] == "video_killed_energy_budget"].head(400)  # the audit's table: 4 settings
    write_runs(few, files["few_settings.parquet"])
    return files


@pytest.fixture
def paths(shared_files, audit_files, tmp_path) -> dict[str, Path]:
    return {**shared_files, **{Path(n).stem: p for n, p in audit_files.items()}, "tmp": tmp_path}


def _case(argv, needle, name):
    return pytest.param(argv, needle, id=name)


OUT = ["--out", "{tmp}/o.parquet"]
NO_CC = "applies only to a CodeCarbon emissions.csv, and no source is one"

CASES = [
    # 1. inspect: the options' values are checked whatever the file; an option that cannot apply is refused
    _case(["data", "inspect", "{runs}", "--policy", "nope=mark"], "policy 'nope' is unknown", "inspect --policy nope"),
    _case(["data", "inspect", "{runs}", "--setting", "garbage"], "KEY=VALUE", "inspect --setting garbage"),
    _case(["data", "inspect", "{runs}", "--policy", "first_call=mark"], "--policy applies only to a public energy CSV",
          "inspect a runs table --policy"),
    _case(["data", "inspect", "{runs}", "--setting", "model=sd2.1"], "--setting " + NO_CC,
          "inspect a runs table --setting"),
    # 2. import: --setting / --phase only with a CodeCarbon source; --phase always a phase; --policy a public CSV
    _case(["data", "import", "{runs}", *OUT, "--setting", "model=nosuch", "--phase", "bogus"],
          "re:--phase 'bogus'.*rule: one of total", "import --phase bogus"),
    _case(["data", "import", "{runs}", *OUT, "--setting", "model=sd2.1"], "--setting " + NO_CC,
          "import a runs table --setting"),
    _case(["data", "import", "{runs}", *OUT, "--phase", "denoiser"], "--phase " + NO_CC, "import a runs table --phase"),
    _case(["data", "import", "{runs}", *OUT, "--setting", "model=sd2.1", "--phase", "total"],
          "--setting and --phase apply only", "import a runs table --setting --phase"),
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=sd2.1", "--phase", "bogus"], "--phase 'bogus'",
          "import emissions --phase bogus"),
    _case(["data", "import", "{runs}", *OUT, "--policy", "first_call=mark"],
          "--policy applies only to a public energy CSV", "import a runs table --policy"),
    # 3. a CodeCarbon setting follows the setting rules of `scaling predict`
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=sdxl,frames=16"],
          "re:`frames` does not apply to .*an image model", "emissions setting frames on an image model"),
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=sd2.1,height=1001"], "multiple of 8",
          "emissions setting height 1001"),
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=wan2.1,frames=80"], "4k+1",
          "emissions setting frames 80 on wan"),
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=sd2.1,modality=video"], "modality 'video'",
          "emissions setting modality against the model"),
    _case(["data", "import", "{emissions}", *OUT, "--setting", "model=sd2.1,precision=fp7"], "fp7",
          "emissions setting precision fp7"),
    # 4. --strict refuses a model or GPU key no registry knows; rows count from 1
    _case(["fit", "--data", "{unk_model}", "--strict"], "re:row 1, column model_key: .*'nosuch/model'",
          "fit --strict unregistered model_key"),
    _case(["fit", "--data", "{unk_gpu}", "--strict"], "re:row 1, column gpu_key: .*'nosuchgpu'",
          "fit --strict unregistered gpu_key"),
    _case(["fit", "--data", "{unk_gpu}"], "no row left to fit", "fit unregistered gpu_key left out"),
    # 5. input tables: a folder, a .parquet that holds no parquet, a NaN energy, a missing energy column
    _case(["data", "import", "{tmp}", *OUT], "re:is a folder.*rule: a \\.parquet or \\.csv file", "import a folder"),
    _case(["data", "inspect", "{tmp}"], "re:is a folder.*rule: a \\.parquet or \\.csv file", "inspect a folder"),
    _case(["fit", "--data", "{tmp}"], "re:is a folder.*rule: a \\.parquet or \\.csv file", "fit a folder"),
    _case(["pareto", "--data", "{tmp}", "--quality", "clap"], "is a folder", "pareto a folder"),
    _case(["data", "export", "{tmp}", "--out", "{tmp}/o.csv"], "is a folder", "export a folder"),
    _case(["data", "import", "{empty}", *OUT], "not a parquet file: it is empty", "import a 0-byte parquet"),
    _case(["data", "inspect", "{empty}"], "not a parquet file: it is empty", "inspect a 0-byte parquet"),
    _case(["data", "import", "{garbage}", *OUT], "re:not a parquet file: .*PAR1", "import text named .parquet"),
    _case(["data", "inspect", "{garbage}"], "not a parquet file", "inspect text named .parquet"),
    _case(["fit", "--data", "{garbage}"], "not a parquet file", "fit text named .parquet"),
    _case(["data", "export", "{garbage}", "--out", "{tmp}/o.csv"], "not a parquet file", "export text named .parquet"),
    _case(["fit", "--data", "{one_nan}"], "re:row 4, column energy_gpu_j: nan;", "fit a NaN energy"),
    _case(["fit", "--data", "{no_energy}"], "column energy_gpu_j is missing", "fit without the energy column"),
    _case(["fit", "--data", "{no_energy_csv}", "--strict"], "column energy_gpu_j is missing",
          "fit --strict a CSV without the energy column"),
    # 6. a law file names a known form
    _case(["predict", "-m", "sd2.1", "--law", "{law_form}"],
          "re:form 'nonsense' is not a law form; rule: one of power,", "predict a law of form nonsense"),
    _case(["predict", "-m", "sd2.1", "--law", "{law_noform}"], "no `form`", "predict a law without a form"),
    # 7. a table without rows imports nothing
    _case(["data", "import", "{header_only}", *OUT], "no rows", "import a header-only CSV"),
    _case(["data", "import", "{zero_rows}", *OUT], "no rows", "import a zero-row parquet"),
    _case(["data", "import", "{zero_rows}", "--out", "{tmp}/o.parquet", "--append"], "no rows",
          "append a zero-row parquet"),
    # 8. no model can be fitted on its own
    _case(["fit", "--data", "{by_model_none}", "--by", "model", "--law", "power"], "re:no model of the table can be "
          "fitted on its own .*1 distinct setting", "fit --by model, no model fits"),
    # 10. pareto --dataset
    _case(["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "{quality}", "--dataset", ""],
          "`dataset` '': it must not be empty", "pareto --dataset ''"),
    _case(["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "{quality}", "--dataset", "nosuch"],
          "re:dataset 'nosuch'; datasets of 'clap': ", "pareto --dataset nosuch names the datasets"),
    _case(["pareto", "--data", "{runs}", "--quality", "energy_gpu_j"], "is a column of the runs schema",
          "pareto --quality on a measurement column"),
    _case(["pareto", "--data", "{runs}", "--quality", "duration_s"], "not a quality metric",
          "pareto --quality on the duration"),
    # 11. an output is named for the format it is written in
    _case(["data", "import", "{runs}", "--out", "{tmp}/o.txt"],
          "re:'\\.txt'.*ends in \\.parquet, \\.csv or \\.csv\\.gz", "import --out o.txt"),
    _case(["data", "import", "{runs}", "--out", "{tmp}/o.txt", "--append"], "re:'\\.txt'.*ends in \\.parquet",
          "import --append --out o.txt"),
    _case(["data", "export", "{runs}", "--out", "{tmp}/o.parquet"], "re:'\\.parquet'.*ends in \\.csv or \\.csv\\.gz",
          "export --out o.parquet"),
    _case(["fit", "--data", "{runs}", "--out", "{tmp}/law.txt"], "re:'\\.txt'.*ends in \\.json", "fit --out law.txt"),
    _case(["fit", "--data", "{runs}", "--report", "{tmp}/fit.json"], "re:'\\.json'.*ends in \\.html or \\.htm",
          "fit --report fit.json"),
    _case(["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "{quality}", "--plot", "{tmp}/p.png"],
          "re:'\\.png'.*ends in \\.html or \\.htm", "pareto --plot p.png"),
]


@pytest.mark.parametrize("argv,needle", CASES)
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(argv, needle, refused, paths):
    if "--plot" in argv:
        pytest.importorskip("plotly")
    before = disk_state(paths["tmp"])
    text = refused(argv, needle)
    assert "np.float64" not in text and "row 0" not in text, text
    assert disk_state(paths["tmp"]) == before, "a refusal wrote, changed or left a file"


def test_a_parquet_file_is_read_as_parquet_only(paths):
    """garbage.parquet holds text that a CSV reader would take: it is refused as not parquet, not read as a CSV."""
    from scaling.app.importers import check_table_path, sniff
    from scaling.errors import DataError

    for name in ("garbage", "empty"):
        with pytest.raises(DataError, match="not a parquet file"):
            sniff(paths[name])
        with pytest.raises(DataError, match="not a parquet file"):
            check_table_path(paths[name])
    assert sniff(paths["runs"]) == "runs" and check_table_path(paths["runs"]) == paths["runs"]


def test_the_law_forms_a_file_can_name_are_the_forms_fit_writes(shared_files):
    from fits.law_file import LAW_FORMS, law_from_dict
    from fits.validation import candidate_laws
    from scaling.errors import LawError

    assert LAW_FORMS == tuple(candidate_laws("energy")) == tuple(candidate_laws("time"))
    shipped = json.loads(shared_files["law"].read_text(encoding="utf-8"))
    law_from_dict(shipped)
    for bad in ("nonsense", "", None, 3):
        with pytest.raises(LawError, match="is not a law form"):
            law_from_dict({**copy.deepcopy(shipped), "form": bad})


def test_an_interval_past_the_largest_float_is_inf_without_overflow(paths):
    """4 distinct settings for the roofline form's 4 data-identified parameters: the top of an overhead's
    interval is exp(> 709.78): infinite, computed without an overflow warning."""
    import numpy as np
    from sklearn.base import clone

    from fits.features import aggregate_settings, design_matrix
    from fits.loglaw import identifiability_notes
    from fits.uncertainty import coef_table
    from fits.validation import candidate_laws
    from scaling.runs import has_flag, read_runs

    rows = read_runs(paths["few_settings"])
    rows = rows[(rows["phase"] == "total").to_numpy(bool) & ~has_flag(rows, "cpu_offload").to_numpy(bool)]
    settings = aggregate_settings(rows)
    X, y = design_matrix(settings), settings["energy_gpu_j"].to_numpy(dtype=float)
    with identifiability_notes() as notes:
        law = clone(candidate_laws()["hw-roofline-max+E0"]).fit(X, y)
    assert len(notes) == 1 and "at least 8 are needed" in notes[0], notes
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = coef_table(law, X, y)
    hi = table.set_index("param")["hi"]
    past = [name for name in ("a", "e0", "s") if name in hi and np.isinf(hi[name]) and np.isfinite(hi["log_" + name])]
    assert past, f"the case reaches past the largest float: {hi.to_dict()}"


def test_an_exact_fit_has_no_interval_and_no_division_by_zero():
    """As many settings as parameters (2 points, a power law): no residual degree of freedom, so no interval
    (NaN), and statsmodels is not asked to divide by 0."""
    import numpy as np

    from fits.laws import PowerLaw
    from fits.uncertainty import coef_table

    X = np.array([[1e15, 20.0], [4e15, 50.0]])
    y = np.array([1000.0, 3500.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the IdentifiabilityWarning of 2 settings (its own test)
        law = PowerLaw().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = coef_table(law, X, y)
    b = table.set_index("param").loc["b"]
    assert np.isfinite(b["estimate"]) and np.isnan(b["lo"]) and np.isnan(b["hi"])
    assert b["method"].startswith("none: 0 residual degrees of freedom")


def _stderr_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.slow  # validates every law form (seconds)
def test_fit_prints_its_warnings_as_notes(answered, paths, recwarn):
    out, err = answered(["fit", "--data", "{few_settings}", "--law", "hw-roofline-max+E0", "--n-splits", "2"])
    lines = _stderr_lines(err)
    assert lines, "the fit rests on 3 settings: a note says so"
    assert all(line.startswith("scaling fit: note: ") for line in lines), err
    assert any(re.search(r"RooflineLaw: \d distinct settings for 4 .*parameters", line) for line in lines), err
    assert len(lines) == len(set(lines)), "each note once"
    assert "Warning" not in err and "fits/" not in err, "no Python warning output, no source lines"
    leaked = [w for w in recwarn if "fits" in str(w.filename) and w.category.__name__ in
              ("IdentifiabilityWarning", "RuntimeWarning")]
    assert not leaked, [str(w.message) for w in leaked]


def test_fit_by_model_skips_a_model_that_cannot_be_fitted_on_its_own(answered, paths):
    out, err = answered(["fit", "--data", "{by_model}", "--by", "model", "--law", "power", "--n-splits", "2",
                         "--out", "{tmp}/law.json"])
    notes = [line for line in _stderr_lines(err) if "skipped model" in line]
    assert len(notes) == 1 and "ByteDance/AnimateDiff-Lightning" in notes[0] and "1 distinct setting" in notes[0], err
    assert notes[0].startswith("scaling fit: note: ")
    assert "[model = stabilityai/stable-diffusion-2-1]" in out
    assert "AnimateDiff-Lightning" in out and "cannot be fitted on its own" in out, "the left-out rows are counted"
    doc = json.loads((paths["tmp"] / "law.json").read_text(encoding="utf-8"))
    assert list(doc["groups"]["laws"]) == ["stabilityai/stable-diffusion-2-1"]
    assert "ByteDance/AnimateDiff-Lightning" not in json.dumps(doc["training"].get("models")), \
        "the law says what it was fitted on"


def test_fit_without_strict_leaves_out_an_unregistered_model_key(paths):
    from fits.fit_runs import fit_runs
    from scaling.errors import DataError

    with pytest.raises(DataError, match="no row left to fit .*unresolved"):
        fit_runs(paths["unk_model"], law="power", drop_unresolved=True)
