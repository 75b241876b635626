"""A plotly page for a fitted law: log-log fits per component with intervals, residuals by model and GPU.

``write_report(result, path)`` takes what :func:`fits.fit_runs.fit_runs` returns (the
``scaling fit`` result) and writes one self-contained HTML file (plotly.js embedded, no network
needed to view it). Sections, per fitted law (one, or one per group of ``--by``):

1. measured energy against FLOPs, log-log, coloured by model, with the law's prediction for
   each GPU and precision (at the median step count of its rows) and its 90 % prediction band;
2. residuals ``log(measured / predicted)`` by model and by GPU;
3. the validation table (every form, every split).

plotly is imported here only (the predict path never imports it).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["figures", "write_report"]


def _import_plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from scaling.errors import LawError

        raise LawError("--report needs plotly: pip install 'diffusion-energy-scaling[report]'") from exc
    return go, make_subplots


def _curve(law, settings, X, level: float = 0.9):
    """Per (GPU, precision): FLOP grid, mean, lo, hi of the law at the group's median steps."""
    from fits.features import STEPS_COLUMN
    from fits.uncertainty import prediction_interval

    out = []
    keys = settings[["gpu_key", "precision"]].astype(str).agg(" ".join, axis=1).to_numpy()
    for key in sorted(set(keys)):
        m = keys == key
        Xg = X[m]
        lo_c, hi_c = float(Xg[:, 0].min()), float(Xg[:, 0].max())
        grid = np.geomspace(lo_c / 1.5, hi_c * 1.5, 60) if hi_c > lo_c else np.array([lo_c])
        row = np.median(Xg, axis=0)
        G = np.tile(row, (grid.size, 1))
        G[:, 0] = grid
        if X.shape[1] > STEPS_COLUMN:
            G[:, STEPS_COLUMN] = float(np.median(Xg[:, STEPS_COLUMN]))
        mean, lo, hi = prediction_interval(law, G, level=level)
        out.append((key, grid, mean, lo, hi, float(np.median(Xg[:, STEPS_COLUMN])) if X.shape[1] > 1 else None))
    return out


def figures(result: Mapping[str, Any], target: str = "energy") -> list[tuple[str, Any]]:
    """(title, plotly Figure) pairs for every fitted law of ``result``."""
    go, make_subplots = _import_plotly()
    figs = []
    ylabel = "energy per call (J)" if target == "energy" else "time per call (s)"
    for key, fit in result["fits"].items():
        law = fit["energy_law"] if target == "energy" else fit["time_law"]
        if law is None:
            continue
        settings = fit["settings"]
        X = fit["X"] if target == "energy" else fit["X_time"]
        y = fit["y"] if target == "energy" else fit["y_time"]
        sub = settings if target == "energy" else settings[(settings["duration_s"].astype(float) > 0).to_numpy(bool)]
        label = "" if not result.get("by") else f" - {result['by']} {key}"
        title = f"{fit['form']}{label}: {ylabel} against FLOP per call"
        fig = go.Figure()
        models = sub["model"].astype(str).to_numpy()
        for mname in sorted(set(models)):
            m = models == mname
            fig.add_trace(go.Scatter(
                x=X[m, 0], y=y[m], mode="markers", name=mname,
                text=[f"{mname}<br>{g} {p}<br>steps {s:g}" for g, p, s in zip(
                    sub["gpu_key"].astype(str)[m], sub["precision"].astype(str)[m], X[m, 1])],
                hovertemplate="%{text}<br>%{x:.3g} FLOP<br>%{y:.4g}<extra></extra>"))
        for gkey, grid, mean, lo, hi, steps in _curve(law, sub, X):
            name = f"law on {gkey}" + (f" ({steps:g} steps)" if steps is not None else "")
            fig.add_trace(go.Scatter(x=np.r_[grid, grid[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", opacity=0.15,
                                     line={"width": 0}, name=f"90% interval, {gkey}", legendgroup=gkey,
                                     hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=grid, y=mean, mode="lines", name=name, legendgroup=gkey))
        fig.update_xaxes(type="log", title="FLOP per call (whole batch; log scale)", dtick=1, exponentformat="power",
                         minor=dict(ticks="inside", showgrid=True), automargin=True)
        fig.update_yaxes(type="log", title=ylabel + ", log scale", dtick=1, tickformat=",~r",
                         minor=dict(ticks="inside", showgrid=True), automargin=True)
        # the legend below the plot, as tall as its entries: one line per 3 entries (never clipped on the right)
        n_entries = sum(1 for tr in fig.data if tr.showlegend is not False)
        fig.update_layout(title=title, height=540 + 24 * math.ceil(n_entries / 3),
                          legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0),
                          margin=dict(t=70, b=40))
        figs.append((title, fig))

        resid = np.log(y) - law.predict_log(X)
        rfig = make_subplots(rows=1, cols=2, subplot_titles=("residual by model", "residual by GPU"))
        for col, column in ((1, "model"), (2, "gpu_key")):
            vals = sub[column].astype(str).to_numpy()
            for v in sorted(set(vals)):
                m = vals == v
                rfig.add_trace(go.Box(y=resid[m], name=v, boxpoints="all", jitter=0.4, showlegend=False),
                               row=1, col=col)
        rfig.add_hline(y=0.0, line_dash="dot")
        rfig.update_yaxes(title="log(measured / predicted), per call", automargin=True)
        rfig.update_xaxes(tickangle=-45, automargin=True)
        rfig.update_layout(title=f"residuals{label}", height=520)
        figs.append((f"residuals{label}", rfig))
    return figs


def _table_html(tab) -> str:
    if tab is None or not len(tab):
        return ""
    cols = ["law", "split", "folds", "n", "r2_log", "mape", "mdape", "spearman"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for rec in tab.to_dict(orient="records"):
        cells = []
        for c in cols:
            v = rec.get(c)
            if isinstance(v, float):
                v = "-" if not math.isfinite(v) else f"{v:.4f}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_report(result: Mapping[str, Any], path: str | Path, target: str | None = None) -> Path:
    """Write the HTML page atomically; returns its path."""

    target = target or result.get("target", "energy")
    figs = figures(result, target)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>scaling fit report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>Energy law fitted on {html.escape(str(result.get('data', '')))}</h1>",
        f"<p>{result.get('n_rows', '?')} rows merged into {result.get('n_settings', '?')} settings; GPUs: "
        f"{html.escape(', '.join(result.get('gpus', [])))}. Intervals are 90 % prediction intervals in log "
        "space. Predictions on the curves use each GPU's median step count.</p>",
    ]
    first = True
    for title, fig in figs:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False))
        first = False
    for key, fit in result["fits"].items():
        label = "" if not result.get("by") else f" ({result['by']} {html.escape(key)})"
        parts.append(f"<h2>validation{label}</h2>")
        parts.append(_table_html(fit.get("validation")))
    parts.append("</body></html>")
    from scaling._files import write_text_atomic

    return write_text_atomic(path, "\n".join(parts))
