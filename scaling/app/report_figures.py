"""The figures of the report (scaling/app/report.py) and the frames they draw.

- :func:`scaling_curve`: predictions along one setting axis, as a ``scaling.predict_grid`` frame;
- :func:`breakdown_figure`: energy per output of each component, grouped bars on a log axis;
- :func:`curves_figure`: energy per output against each axis of a model's modality, with the band
  of the 90% interval;
- :func:`gpu_figure`: a ``Comparison.to_frame()`` across GPUs: ranked ones first, never-measured
  ones hatched, the ones that need CPU offload or do not fit apart, unranked;
- :func:`log_axis`: a log axis with one readable label per decade.

Every axis title names its unit and says per output or per call. plotly is imported inside the
functions that draw.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from scaling.errors import ScalingError
from scaling.units import J_PER_WH

AXES_BY_MODALITY = {
    "video": ("resolution", "frames", "steps"),
    "image": ("resolution", "steps"),
    "audio": ("seconds", "steps"),
}
AXIS_TITLES = {
    "resolution": "pixels per frame (megapixels)",
    "frames": "frames per video",
    "steps": "denoising steps",
    "seconds": "audio length (s)",
}
ENERGY_TITLE = "energy per output (Wh)"
ROLES = ("text_encoder", "denoiser", "upsampler", "decoder", "vocoder")
ROLE_COLORS = {
    "text_encoder": "#4C78A8",
    "denoiser": "#F58518",
    "decoder": "#54A24B",
    "vocoder": "#B279A2",
    "upsampler": "#E45756",
}
_OTHER_COLORS = ("#72B7B2", "#EECA3B", "#9D755D", "#BAB0AC")
MEASURED_COLOR = "#4C78A8"
UNMEASURED_COLOR = "#BAB0AC"
NOT_FITTING_COLOR = "#E45756"
OFFLOAD_COLOR = "#F58518"


# -- sweeps -------------------------------------------------------------------------------------

def sweep_values(spec, axis: str) -> list[Any]:
    """Valid values of ``axis`` for ``spec`` around its default setting (the model's own rules).

    resolution -> ``(width, height)`` pairs keeping the default aspect ratio; frames -> counts
    of the model's ``k*step+1`` form; steps -> step counts; seconds -> audio lengths.
    """
    d, rules = spec.defaults, spec.rules
    if axis == "resolution":
        w0, h0 = d["width"], d["height"]
        mult = rules.get("res_multiple") or 8
        max_side = rules.get("max_side") or 2048
        out = []
        for f in (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0):
            w = max(mult, int(round(w0 * f / mult)) * mult)
            h = max(mult, int(round(h0 * f / mult)) * mult)
            if max(w, h) <= max_side and (w, h) not in out:
                out.append((w, h))
        return out
    if axis == "frames":
        step = rules.get("frame_step") or 1
        max_frames = rules.get("max_frames") or 4 * d["frames"]
        top = min(max_frames, 2 * d["frames"])
        out = sorted({min(top, max(1, step * k + 1)) for k in _spread(0, (top - 1) // step, 8)} | {d["frames"]})
        return [f for f in out if (f - 1) % step == 0 and f <= max_frames]
    if axis == "steps":
        s0 = d["steps"]
        vals = {max(1, int(round(s0 * f))) for f in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)}
        return sorted(v for v in vals if v <= 10_000)
    if axis == "seconds":
        s0 = d["audio_seconds"]
        max_s = rules.get("max_audio_s") or 4 * s0
        vals = {round(s0 * f, 2) for f in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)}
        return sorted(v for v in vals if 0 < v <= max_s + 1e-9)
    raise ScalingError(f"unknown sweep axis {axis!r}: use one of {', '.join(AXIS_TITLES)}")


def _spread(lo: int, hi: int, n: int) -> list[int]:
    if hi <= lo:
        return [lo]
    return sorted({lo + round(i * (hi - lo) / (n - 1)) for i in range(n)})


def _grid_kwargs(gpu=None, law=None, region=None, intensity=None, pue=1.0, precision=None, **setting) -> dict:
    """The arguments of ``scaling.predict_grid`` for one GPU and region, ``precision`` as an axis."""
    out = {"gpus": [gpu] if gpu is not None else None, "regions": [region] if region else None, "law": law,
           "intensity": intensity, "pue": pue, **setting}
    if precision is not None:
        out["precision"] = precision
    return out


def scaling_curve(model, axis: str, *, values: Sequence[Any] | None = None, law: Any = None, **predict_kwargs: Any):
    """Predictions of ``model`` along ``axis`` (other fields at their defaults), as the frame of
    ``scaling.predict_grid`` (one row per value, scaling/app/frames.py columns) with ``x``: the
    value on the axis (megapixels per frame for ``resolution``) and ``x_label``."""
    from scaling.app.planning import predict_grid
    from scaling.registry import ModelSpec, resolve_model

    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    vals = list(values if values is not None else sweep_values(spec, axis))
    axis_kw = {"res": [f"{w}x{h}" for w, h in vals]} if axis == "resolution" else {axis: vals}
    df = predict_grid(spec, **_grid_kwargs(law=_law(law), **predict_kwargs), **axis_kw).to_frame()
    if axis == "resolution":
        df["x"] = df["width"] * df["height"] / 1e6
        df["x_label"] = df["res"]
    else:
        column = {"seconds": "seconds"}.get(axis, axis)
        df["x"] = df[column].astype(float)
        df["x_label"] = [f"{v:g} s" if axis == "seconds" else f"{v:g} {axis}" for v in df["x"]]
    return df


# -- figures ------------------------------------------------------------------------------------

def _go():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise ScalingError("the report needs plotly: pip install 'diffusion-energy-scaling[report]'") from None
    return go, make_subplots


def _role_color(role: str, seen: dict[str, str]) -> str:
    if role in ROLE_COLORS:
        return ROLE_COLORS[role]
    if role not in seen:
        seen[role] = _OTHER_COLORS[len(seen) % len(_OTHER_COLORS)]
    return seen[role]


def _short(model_id: str) -> str:
    return model_id.split("/")[-1]


def _describe(setting) -> str:
    from scaling.app.commands._common import describe_setting
    from scaling.app.commands._out import plural

    return f"{describe_setting(setting)}, {plural(setting.steps, 'step')}"


def log_axis(values: Iterable[float]) -> dict[str, Any]:
    """A readable log axis: one labelled tick per decade (1, 10, 100, or 0.01, 0.1, ...), written in
    full (``1,000``, ``0.01``), unlabelled minor ticks between. A range inside one decade gets plotly's
    own ticks, written in full too."""
    vals = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    axis: dict[str, Any] = {"type": "log", "tickformat": ",~r", "automargin": True,
                            "minor": {"ticks": "inside", "showgrid": True}}
    if vals and math.log10(max(vals) / min(vals)) >= 1:
        axis["dtick"] = 1
    return axis


def _component_energy(est, role: str) -> tuple[float, float, float] | None:
    """Energy per output of a role (J): value, lo, hi; None when the model has no such component."""
    n = est.setting.n_outputs
    c = next((c for c in est.components if c.role == role), None)
    if c is None or not (c.flop or c.energy_j):
        return None
    return c.energy_j / n, c.energy_lo_j / n, c.energy_hi_j / n


def breakdown_figure(estimates: Sequence[Any], title: str | None = None):
    """Energy per output of each component (Wh, log axis: the small parts stay visible next to the
    denoiser), grouped bars with their intervals, one panel per modality; the total as a black mark."""
    go, make_subplots = _go()
    modalities = [m for m in ("video", "image", "audio") if any(e.setting.modality == m for e in estimates)]
    fig = make_subplots(rows=1, cols=max(1, len(modalities)), subplot_titles=[f"{m} models" for m in modalities],
                        horizontal_spacing=0.08)
    other: dict[str, str] = {}
    roles = [r for r in ROLES if any(_component_energy(e, r) for e in estimates)]
    roles += [c.role for e in estimates for c in e.components if c.role not in roles and _component_energy(e, c.role)]
    for col, modality in enumerate(modalities, 1):
        group = [e for e in estimates if e.setting.modality == modality]
        names = [_short(e.model_id) for e in group]
        values = []
        for role in roles:
            parts = [_component_energy(e, role) for e in group]
            if not any(parts):
                continue
            ys = [None if p is None else p[0] / J_PER_WH for p in parts]
            values += [y for y in ys if y]
            share = [None if p is None else p[0] * e.setting.n_outputs / e.energy_j for p, e in zip(parts, group)]
            fig.add_trace(go.Bar(
                x=names, y=ys, name=role, legendgroup=role, showlegend=role not in {t.name for t in fig.data},
                marker_color=_role_color(role, other),
                error_y=dict(type="data", symmetric=False, thickness=1,
                             array=[0 if p is None else (p[2] - p[0]) / J_PER_WH for p in parts],
                             arrayminus=[0 if p is None else (p[0] - p[1]) / J_PER_WH for p in parts]),
                hovertext=["" if p is None else f"{_fmt_j(p[0])} per output ({_fmt_j(p[1])} - {_fmt_j(p[2])}), "
                           f"{s:.1%} of the total" for p, s in zip(parts, share)],
                hovertemplate="%{x}<br>" + role + ": %{y:.3g} Wh per output<br>%{hovertext}<extra></extra>"),
                row=1, col=col)
        totals = [e.energy_j / e.setting.n_outputs / J_PER_WH for e in group]
        values += totals
        fig.add_trace(go.Scatter(
            x=names, y=totals, mode="markers", name="total, 90% interval", legendgroup="total",
            showlegend=col == 1, marker=dict(color="black", symbol="line-ew-open", size=16, line=dict(width=2)),
            error_y=dict(type="data", symmetric=False, color="black",
                         array=[(e.energy_hi_j - e.energy_j) / e.setting.n_outputs / J_PER_WH for e in group],
                         arrayminus=[(e.energy_j - e.energy_lo_j) / e.setting.n_outputs / J_PER_WH for e in group]),
            hovertext=[f"{_describe(e.setting)}; total {_fmt_j(e.energy_j / e.setting.n_outputs)} per output "
                       f"({_fmt_j(e.energy_lo_j / e.setting.n_outputs)} - {_fmt_j(e.energy_hi_j / e.setting.n_outputs)})"
                       for e in group],
            hovertemplate="%{x}<br>%{hovertext}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text=f"{ENERGY_TITLE}, log scale" if col == 1 else None, row=1, col=col,
                         **log_axis(values))
        fig.update_xaxes(tickangle=-30, automargin=True, row=1, col=col)
    fig.update_layout(barmode="group", title=title or "Energy per component, per output (default setting of each "
                      "model, batch 1)", height=520, legend=dict(orientation="h", yanchor="top", y=-0.3),
                      margin=dict(t=70, b=40))
    return fig


def curves_figure(model, *, axes: Sequence[str] | None = None, law: Any = None, title: str | None = None,
                  curves: dict[str, Any] | None = None, **predict_kwargs: Any):
    """Energy per output (Wh) of ``model`` against each axis of its modality, with the 90% interval band.

    ``curves``: per axis, the frame of :func:`scaling_curve` (computed when not given)."""
    from scaling.registry import ModelSpec, resolve_model

    go, make_subplots = _go()
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    axes = list(axes or AXES_BY_MODALITY[spec.modality])
    if curves is None:
        curves = {a: scaling_curve(spec, a, law=law, **predict_kwargs) for a in axes}
    fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[f"energy vs {AXIS_TITLES[a].split(' (')[0]}"
                                                               for a in axes], horizontal_spacing=0.07)
    for col, axis in enumerate(axes, 1):
        df = curves[axis].sort_values("x")
        xs = df["x"].tolist()
        first = col == 1
        fig.add_trace(go.Scatter(x=xs, y=df["energy_per_output_hi_wh"].tolist(), mode="lines",
                                 line=dict(width=0), showlegend=False, hoverinfo="skip", legendgroup="band"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=xs, y=df["energy_per_output_lo_wh"].tolist(), mode="lines",
                                 line=dict(width=0), fill="tonexty", fillcolor="rgba(245,133,24,0.25)",
                                 name="90% interval", showlegend=first, hoverinfo="skip", legendgroup="band"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(
            x=xs, y=df["energy_per_output_wh"].tolist(), mode="lines+markers", name="predicted energy per output",
            showlegend=first, legendgroup="total", line=dict(color="#F58518", width=2),
            hovertext=[f"{r.x_label}: {_fmt_j(r.energy_per_output_j)} per output "
                       f"({_fmt_j(r.energy_per_output_lo_j)} - {_fmt_j(r.energy_per_output_hi_j)}), "
                       f"{r.time_s:.3g} s per call" for r in df.itertuples()],
            hovertemplate="%{hovertext}<extra></extra>"), row=1, col=col)
        dx = _default_x(axis, spec.defaults)
        if dx is not None:
            fig.add_vline(x=dx, line=dict(color="grey", dash="dot", width=1), row=1, col=col)
        fig.update_xaxes(title_text=AXIS_TITLES[axis], automargin=True, row=1, col=col)
        fig.update_yaxes(title_text=ENERGY_TITLE if first else None, rangemode="tozero", automargin=True,
                         row=1, col=col)
    d0 = curves[axes[0]].iloc[0]
    fig.update_layout(
        title=title or (f"{spec.id} on {d0['gpu_name']}, {d0['precision']}: scaling curves "
                        f"(dotted line: default setting; other fields at their defaults)"),
        height=420, legend=dict(orientation="h", yanchor="top", y=-0.25), margin=dict(t=80, b=40))
    return fig


def _default_x(axis: str, d) -> float | None:
    if axis == "resolution":
        return d["width"] * d["height"] / 1e6
    if axis == "frames":
        return d.get("frames")
    if axis == "steps":
        return d.get("steps")
    if axis == "seconds":
        return d.get("audio_seconds")
    return None


def gpu_figure(frame, title: str | None = None):
    """Energy per output and time per call of one setting across GPUs (a ``Comparison.to_frame()``):
    ranked GPUs first (by energy per output), never-measured ones hatched and grey; the GPUs the
    pipeline fits only with model CPU offload (orange, dotted) and those it does not fit at all (red)
    shown apart, unranked."""
    go, make_subplots = _go()
    df = frame.reset_index(drop=True)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("energy per output (Wh), 90% interval",
                                                        "time per call (s), 90% interval"),
                        horizontal_spacing=0.1)
    kinds = (("measured", "GPU in the law's data", MEASURED_COLOR, "", "#333"),
             ("never", "never measured: predicted from registry figures", UNMEASURED_COLOR, "/", "#333"),
             ("offload", "needs CPU offload (not ranked)", "rgba(0,0,0,0)", ".", OFFLOAD_COLOR),
             ("no fit", "does not fit in memory (not ranked)", "rgba(0,0,0,0)", "x", NOT_FITTING_COLOR))

    def kind(r) -> str:
        if not r.fits_memory:
            return "offload" if r.memory_fit == "with model CPU offload" else "no fit"
        return "measured" if r.gpu_measured else "never"

    df["kind"] = [kind(r) for r in df.itertuples()]
    for key, name, color, pattern, line in kinds:
        g = df[df["kind"] == key]
        if g.empty:
            continue
        hover = [f"{r.gpu_name}: {_fmt_j(r.energy_per_output_j)} per output ({_fmt_j(r.energy_per_output_lo_j)} - "
                 f"{_fmt_j(r.energy_per_output_hi_j)}), {r.time_s:.3g} s per call ({r.time_lo_s:.3g} - "
                 f"{r.time_hi_s:.3g})" + {"never": " - never measured",
                                            "offload": f" - needs CPU offload: {r.memory_resident_gib:.1f} GiB "
                                                       f"resident, has {r.gpu_memory_gib:.0f} GiB (the transfers "
                                                       "are not priced)",
                                            "no fit": f" - does not fit: needs {r.memory_need_gib:.1f} GiB, has "
                                                      f"{r.gpu_memory_gib:.0f} GiB"}.get(key, "")
                 for r in g.itertuples()]
        apart = key in ("offload", "no fit")
        marker = dict(color=color, pattern=dict(shape=pattern, fgcolor=line if apart else None),
                      line=dict(color=line, width=1.5 if apart else 0.5))
        fig.add_trace(go.Bar(
            x=g["gpu"].tolist(), y=g["energy_per_output_wh"].tolist(), name=name, legendgroup=name, marker=marker,
            error_y=dict(type="data", symmetric=False, array=(g["energy_per_output_hi_wh"] - g["energy_per_output_wh"]).tolist(),
                         arrayminus=(g["energy_per_output_wh"] - g["energy_per_output_lo_wh"]).tolist()),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(
            x=g["gpu"].tolist(), y=g["time_s"].tolist(), name=name, legendgroup=name, showlegend=False, marker=marker,
            error_y=dict(type="data", symmetric=False, array=(g["time_hi_s"] - g["time_s"]).tolist(),
                         arrayminus=(g["time_s"] - g["time_lo_s"]).tolist()),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"), row=1, col=2)
    order = df["gpu"].tolist()
    for col, values, label in ((1, df["energy_per_output_wh"], "energy per output (Wh)"),
                               (2, df["time_s"], "time per call (s)")):
        fig.update_xaxes(categoryorder="array", categoryarray=order, tickangle=-45, automargin=True,
                         title_text="GPU (ranked by energy per output; unranked ones last)" if col == 1 else "GPU",
                         row=1, col=col)
        vals = [v for v in values if v and v > 0]
        # a wide spread (old boards at fp32 next to new ones) would flatten the rest: log axis
        if vals and max(vals) / min(vals) > 20:
            fig.update_yaxes(title_text=label + ", log scale", row=1, col=col, **log_axis(vals))
        else:
            fig.update_yaxes(title_text=label, automargin=True, row=1, col=col)
    r0 = df.iloc[0]
    fig.update_layout(
        title=title or f"{r0['model']}, {r0['precision']}: GPUs ranked by energy per output",
        height=500, barmode="relative", legend=dict(orientation="h", yanchor="top", y=-0.45), margin=dict(t=80, b=40))
    return fig


def _law(law: Any):
    from fits.law_file import load_law

    if law is None or isinstance(law, str) or hasattr(law, "__fspath__"):
        return load_law(law)
    return law


def _fmt_j(j: float) -> str:
    from scaling.app.commands._out import fmt_j

    return fmt_j(j)


def tradeoff_figure(frame, title: str | None = None):
    """Time per call against energy per output for every GPU count and parallel plan of ``frame``
    (:meth:`scaling.app.planning.Comparison.to_frame` with ``gpu_counts``): the time-energy trade-off
    view of the ML.ENERGY leaderboard, predicted. One colour per GPU count, error bars: the 90%
    intervals of both; hollow markers: extrapolated (the GPU or the plan was never measured)."""
    go, _ = _go()
    fig = go.Figure()
    rows = frame[frame["fits_memory"]] if "fits_memory" in frame else frame
    for n, part in rows.groupby("gpu_count", sort=True):
        labels = [p if isinstance(p, str) and p else "1 GPU" for p in part["plan"]]
        fig.add_trace(go.Scatter(
            x=part["time_s"], y=part["energy_per_output_j"], mode="markers", name=f"{int(n)} GPU" + ("s" if n > 1 else ""),
            text=labels, hovertemplate="%{text}<br>time %{x:.3g} s per call<br>energy %{y:.3g} J per output<extra></extra>",
            marker=dict(size=11, symbol=["circle-open" if x else "circle" for x in part["extrapolated"]]),
            error_x=dict(type="data", symmetric=False, array=part["time_hi_s"] - part["time_s"],
                         arrayminus=part["time_s"] - part["time_lo_s"]),
            error_y=dict(type="data", symmetric=False,
                         array=part["energy_per_output_hi_j"] - part["energy_per_output_j"],
                         arrayminus=part["energy_per_output_j"] - part["energy_per_output_lo_j"])))
    fig.update_layout(title=title, legend_title_text="GPUs per call", margin=dict(l=70, r=20, t=50, b=60))
    fig.update_xaxes(title_text="time per call (s), log", type="log", automargin=True)
    fig.update_yaxes(title_text="GPU energy per output (J, all GPUs of the call), log", type="log", automargin=True)
    return fig
