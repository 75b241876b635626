"""Runs tables and import files: `scaling fit`, `scaling pareto`, `scaling data import / inspect /
export` on data that breaks the runs schema (scaling/runs) or cannot make a law."""

from __future__ import annotations

import pandas as pd
import pytest

from scaling.runs import read_runs


@pytest.fixture(scope="module")
def runs_frame(shared_files) -> pd.DataFrame:
    return read_runs(shared_files["runs"])


def _table(runs_frame, tmp, edit, name="runs.csv"):
    df = runs_frame.copy()
    df = edit(df) if edit is not None else df
    path = tmp / name
    df.to_csv(path, index=False)
    return path


def _cell(column, value, rows=1):
    def edit(df):
        df[column] = df[column].astype(object)
        df.loc[df.index[:rows], column] = value
        return df
    return edit


FIT_TABLES = [
    ("one huge energy", _cell("energy_gpu_j", 1e300), "re:energy_gpu_j|implausible|plausible"),
    ("tiny energies", _cell("energy_gpu_j", 1e-300, rows=10_000), "re:energy_gpu_j|implausible|plausible"),
    ("a negative energy", _cell("energy_gpu_j", -5.0), "energy_gpu_j"),
    ("an empty energy", _cell("energy_gpu_j", None), "energy_gpu_j"),
    ("text in the energy", _cell("energy_gpu_j", "lots"), "energy_gpu_j"),
    ("infinite energy", _cell("energy_gpu_j", "inf"), "energy_gpu_j"),
    ("10^12 steps", _cell("steps", 10**12), "steps"),
    ("negative steps", _cell("steps", -3), "steps"),
    ("no energy column", lambda df: df.drop(columns=["energy_gpu_j"]), "energy"),
    ("no model column", lambda df: df.drop(columns=["model"]), "model"),
    ("no rows", lambda df: df.head(0), "re:no flop|no rows|empty"),
    ("one row", lambda df: df.head(1), "1 distinct setting"),
    ("one setting repeated", lambda df: pd.concat([df.head(1)] * 5, ignore_index=True).assign(
        run_id=[f"repeat:{i}" for i in range(5)]), "1 distinct setting"),
    ("no FLOP counts", lambda df: df.assign(flop=None), "flop"),
]


@pytest.mark.parametrize("edit,needle", [pytest.param(e, n, id=name) for name, e, n in FIT_TABLES])
def test_fit_refuses_a_table_that_cannot_make_a_law(edit, needle, refused, paths, runs_frame):
    data = _table(runs_frame, paths["tmp"], edit)
    refused(["fit", "--data", str(data), "--law", "power", "--out", "{tmp}/law.json"], needle)
    assert not (paths["tmp"] / "law.json").exists(), "no law was written"


@pytest.mark.parametrize("edit,needle", [pytest.param(e, n, id=name) for name, e, n in FIT_TABLES[:9]
                                         if name != "an empty energy"])  # pareto leaves out rows without energy
def test_pareto_refuses_the_same_tables(edit, needle, refused, paths, runs_frame):
    data = _table(runs_frame, paths["tmp"], edit)
    refused(["pareto", "--data", str(data), "--quality", "clap", "--quality-table", "{quality}"], needle)


PUBLIC_EDITS = [
    ("1e308 J", lambda df: df.assign(energy_gpu_j=1e308), "re:energy_gpu_j|plausible"),
    ("10^12 steps", lambda df: df.assign(steps=10**12), "steps"),
    ("negative energy", lambda df: df.assign(energy_gpu_j=-1.0), "energy_gpu_j"),
    ("no energy column", lambda df: df.drop(columns=["energy_gpu_j"]), "energy_gpu_j"),
    ("no model column", lambda df: df.drop(columns=["model"]), "model"),
    ("unknown phase", lambda df: df.assign(phase="lunch"), "phase"),
    ("0 GPUs", lambda df: df.assign(gpu_count=0), "gpu_count"),
    ("batch 0", lambda df: df.assign(batch_size=0), "batch"),
]


@pytest.mark.parametrize("edit,needle", [pytest.param(e, n, id=name) for name, e, n in PUBLIC_EDITS])
@pytest.mark.parametrize("action", ["import", "inspect"])
def test_an_import_file_that_breaks_the_schema_is_refused(action, edit, needle, refused, paths):
    src = paths["tmp"] / "leybzon_sd35_quantization.csv"
    edit(pd.read_csv(paths["csv"])).to_csv(src, index=False)
    argv = ["data", action, str(src)] + (["--out", "{tmp}/runs.parquet", "--no-flops"] if action == "import" else [])
    refused(argv, needle)
    assert not (paths["tmp"] / "runs.parquet").exists()


@pytest.mark.parametrize("content,needle", [
    (b"", "re:empty|no columns|not a recognised"),
    (b"\x00\x01\x02garbage\xff\xfe", "re:UTF-8|not a recognised|binary"),
    (b"model,steps\nsd2.1,50\n", "not a recognised"),
    ("model,energy_gpu_j\ncaf\xe9,3\n".encode("latin-1"), "re:UTF-8|not a recognised"),
])
@pytest.mark.parametrize("action", ["import", "inspect"])
def test_a_garbage_file_is_refused(action, content, needle, refused, paths):
    src = paths["tmp"] / "garbage.csv"
    src.write_bytes(content)
    argv = ["data", action, str(src)] + (["--out", "{tmp}/runs.parquet"] if action == "import" else [])
    refused(argv, needle)


@pytest.mark.parametrize("setting,needle", [
    ("model=sd2.1,steps=nan", "nan"),
    ("model=sd2.1,steps=inf", "inf"),
    ("model=sd2.1,model=flux-dev", "twice"),
    ("=3", "KEY=VALUE"),
    ("steps", "KEY=VALUE"),
    ("model=nope,steps=50", "nope"),
    ("model=sd2.1,steps=0", "steps"),
    ("model=sd2.1,colour=red", "colour"),
])
def test_the_setting_of_a_codecarbon_file_is_checked(setting, needle, refused, paths):
    src = paths["tmp"] / "emissions.csv"
    src.write_text("timestamp,project_name,run_id,duration,emissions,energy_consumed,cpu_energy,gpu_energy,"
                   "ram_energy\n2024-01-01T00:00:00,p,r1,10.0,0.001,0.002,0.0005,0.001,0.0005\n")
    refused(["data", "import", str(src), "--out", "{tmp}/cc.parquet", "--setting", setting], needle)
    assert not (paths["tmp"] / "cc.parquet").exists()


def test_a_quality_table_alone_imports_nothing(refused, paths):
    refused(["data", "import", "{quality}", "--out", "{tmp}/q.parquet"], "quality")


@pytest.mark.slow  # a fit validates every law form (tens of seconds)
def test_a_valid_table_fits_and_its_law_predicts(answered, paths):
    out, _ = answered(["fit", "--data", "{runs}", "--law", "power", "--n-splits", "2", "--out", "{tmp}/law.json"])
    assert "J per call" in out and (paths["tmp"] / "law.json").is_file()
    out, _ = answered(["predict", "-m", "sd2.1", "--law", "{tmp}/law.json"])
    assert "per output" in out


def test_a_valid_table_exports(answered, paths):
    answered(["data", "export", "{runs}", "--out", "{tmp}/runs.csv"])
    assert len(pd.read_csv(paths["tmp"] / "runs.csv")) == len(read_runs(paths["runs"]))
