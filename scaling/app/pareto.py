"""Energy against quality: the Pareto set of settings.

A runs table may carry quality columns (CLAP, FAD or any user metric), or quality can be
joined from a tidy quality table (``model, steps, metric, value[, dataset]``, as
:func:`scaling.app.importers.import_quality` returns for the published audio study). Each
setting (model x steps x resolution/frames/seconds x batch) is reduced to its median energy
per output and its quality; a setting is on the front when no other setting has both less
energy and better quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.errors import DataError

SETTING_COLUMNS = ["model", "model_key", "steps", "height", "width", "frames", "audio_seconds", "batch_size",
                   "precision", "gpu_key"]


@dataclass
class ParetoResult:
    points: pd.DataFrame          # one row per setting: energy_per_output_j, quality, on_model_front, on_front
    quality: str
    higher_is_better: bool

    def front(self, per_model: bool = False) -> pd.DataFrame:
        col = "on_model_front" if per_model else "on_front"
        return self.points[self.points[col]].sort_values(["energy_per_output_j"])


def pareto_mask(energy: np.ndarray, quality: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """True where no other point has energy <= and quality >= (better), with one strictly."""
    e = np.asarray(energy, dtype=float)
    q = np.asarray(quality, dtype=float) * (1 if higher_is_better else -1)
    mask = np.ones(len(e), dtype=bool)
    for i in range(len(e)):
        dominated = (e <= e[i]) & (q >= q[i]) & ((e < e[i]) | (q > q[i]))
        mask[i] = not dominated.any()
    return mask


def join_quality(runs: pd.DataFrame, quality: pd.DataFrame, metric: str, dataset: str | None = None) -> pd.DataFrame:
    """Add a column ``metric`` to ``runs`` from a tidy quality table, matched on model and steps
    (the mean over datasets unless ``dataset`` is named)."""
    if dataset is not None and not str(dataset).strip():
        raise DataError(f"dataset {dataset!r}: it must not be empty (rule: name a dataset of the quality table, "
                        "or leave it out for the mean over datasets)")
    q = quality[quality["metric"] == metric]
    if dataset is not None:
        q = q[q["dataset"] == dataset]
    if q.empty:
        known = sorted(quality["metric"].unique())
        text = f"quality table: no rows for metric {metric!r}"
        if dataset is not None:
            sets = sorted(map(str, quality.loc[quality["metric"] == metric, "dataset"].dropna().unique())) \
                if "dataset" in quality.columns else []
            text += f" and dataset {dataset!r}" + (f"; datasets of {metric!r}: {', '.join(sets)}" if sets else "")
        raise DataError(text + f"; metrics: {', '.join(known)}")
    q = q.groupby(["model", "steps"], as_index=False)["value"].mean().rename(columns={"value": metric})
    out = runs.drop(columns=[metric], errors="ignore").merge(q, on=["model", "steps"], how="left")
    return out


def pareto(runs: pd.DataFrame, quality: str, higher_is_better: bool = True,
           energy_column: str = "energy_gpu_j") -> ParetoResult:
    if quality not in runs.columns:
        raise DataError(f"runs table has no quality column {quality!r}: add one, or join a quality table "
                        "with --quality-table")
    df = runs[runs["phase"] == "total"] if "phase" in runs.columns else runs
    df = df[df[quality].notna() & df[energy_column].notna()]
    if df.empty:
        raise DataError(f"no row has both {energy_column} and {quality!r}")
    df = df.assign(energy_per_output_j=df[energy_column] / df["batch_size"].fillna(1))
    keys = [c for c in SETTING_COLUMNS if c in df.columns]
    grouped = (df.groupby(keys, dropna=False, as_index=False)
                 .agg(energy_per_output_j=("energy_per_output_j", "median"), quality=(quality, "mean"),
                      n_rows=("energy_per_output_j", "size")))
    grouped["on_front"] = pareto_mask(grouped["energy_per_output_j"], grouped["quality"], higher_is_better)
    grouped["on_model_front"] = False
    for _, idx in grouped.groupby("model").groups.items():
        sub = grouped.loc[idx]
        grouped.loc[idx, "on_model_front"] = pareto_mask(sub["energy_per_output_j"], sub["quality"], higher_is_better)
    return ParetoResult(grouped, quality, higher_is_better)


_TEXT_POSITIONS = ("top center", "bottom center", "middle right", "middle left")


def pareto_figure(result: ParetoResult):
    """A plotly scatter: energy per output (log) against quality, the fronts drawn as lines.

    Only the points on a model's front carry a text label (their step count), placed in turn
    above, below, right and left so that neighbours do not merge; every point says what it is
    (model, steps, batch, energy per output, quality, runs) on hover."""
    import plotly.graph_objects as go

    fig = go.Figure()
    pts = result.points
    for model, sub in pts.groupby("model"):
        sub = sub.sort_values("energy_per_output_j")
        steps = [f"{int(s)}" if pd.notna(s) else "" for s in sub["steps"]]
        batch = [int(b) if pd.notna(b) else 1 for b in sub.get("batch_size", pd.Series([1] * len(sub)))]
        front = list(sub["on_model_front"])
        text, positions, k = [], [], 0
        for s, b, f in zip(steps, batch, front):
            text.append((s + (f" x{b}" if b > 1 else "")) if f else "")
            positions.append(_TEXT_POSITIONS[k % len(_TEXT_POSITIONS)])
            k += bool(f)
        hover = [f"{model}<br>{s} steps, batch {b}<br>{e:,.1f} J per output<br>{result.quality} {q:.4g}<br>"
                 f"{n} runs" + ("<br>on the model's front" if f else "")
                 for s, b, e, q, n, f in zip(steps, batch, sub["energy_per_output_j"], sub["quality"], sub["n_rows"],
                                             front)]
        fig.add_trace(go.Scatter(
            x=sub["energy_per_output_j"], y=sub["quality"], mode="markers+text", name=str(model),
            text=text, textposition=positions, textfont=dict(size=10), hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(symbol=["star" if f else "circle" for f in front], size=10)))
    front = result.front().sort_values("energy_per_output_j")
    fig.add_trace(go.Scatter(x=front["energy_per_output_j"], y=front["quality"], mode="lines",
                             name="front across models", line=dict(color="black", dash="dash"), hoverinfo="skip"))
    fig.update_xaxes(type="log", title="GPU energy per output (J, median over runs; log scale)", dtick=1,
                     tickformat=",.0f", minor=dict(ticks="inside", showgrid=True), automargin=True)
    fig.update_yaxes(title=result.quality + (" (higher is better)" if result.higher_is_better else " (lower is better)"),
                     automargin=True)
    fig.update_layout(title="Energy against quality (labels: steps on the model's front, x batch; stars: on the "
                            "model's front; hover for every point)", margin=dict(t=70, b=70), height=600)
    return fig
