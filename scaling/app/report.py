"""One self-contained HTML report of predicted energy: breakdown, scaling curves, GPU comparison.

``write_report("report.html")`` (or ``scaling report --out report.html``) writes a single page
with plotly.js inlined, so it opens offline. It holds:

- the energy breakdown per component (text encoder, denoiser, decoder, vocoder) of several
  models at their default settings, as stacked bars with the 90% interval of the total;
- scaling curves with their 90% interval bands: energy against resolution, frames, steps and
  audio length, one figure per model (by default a video, two image and an audio model);
- a GPU comparison: one model's setting across GPUs, never-measured GPUs marked.

Every figure is a prediction of the law (``scaling.predict``), never a measurement. plotly is
imported lazily, only when a figure is drawn: the predict path never pulls it in.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from scaling._files import check_output, write_text_atomic
from scaling.errors import ScalingError

DEFAULT_BREAKDOWN_MODELS = (
    "wan2.1", "wan2.1-14b", "cogvideox-5b", "sd1.5", "sd2.1", "sdxl", "flux-dev", "sd3.5-large",
    "audioldm2", "stable-audio-open",
)
"""Models of the breakdown chart when none are named (each at its default setting)."""

DEFAULT_CURVE_MODELS = ("wan2.1", "sd2.1", "flux-dev", "audioldm2")
"""One default model per modality (two for images) for the scaling curves."""

AXES_BY_MODALITY = {
    "video": ("resolution", "frames", "steps"),
    "image": ("resolution", "steps"),
    "audio": ("seconds", "steps"),
}
AXIS_TITLES = {
    "resolution": "pixels per frame (megapixels)",
    "frames": "frames",
    "steps": "denoising steps",
    "seconds": "audio length (s)",
}
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
J_PER_WH = 3600.0


@dataclass
class Report:
    """A built report: the page and what it holds."""

    html: str
    figures: list[str] = field(default_factory=list)     # div ids of the plotly figures, in order
    skipped: list[str] = field(default_factory=list)     # what could not be predicted, and why
    law: str = ""
    meta: dict[str, Any] = field(default_factory=dict)   # per figure: kind, model, modality, GPUs


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


def _setting_kwargs(axis: str, value: Any) -> dict[str, Any]:
    if axis == "resolution":
        return {"res": f"{value[0]}x{value[1]}"}
    return {axis: value}


def _x_of(axis: str, value: Any) -> float:
    return value[0] * value[1] / 1e6 if axis == "resolution" else float(value)


def _x_label(axis: str, value: Any) -> str:
    if axis == "resolution":
        return f"{value[0]}x{value[1]}"
    if axis == "seconds":
        return f"{value:g} s"
    return f"{value} {axis}"


def scaling_curve(model, axis: str, *, values: Sequence[Any] | None = None, law: Any = None, **predict_kwargs: Any):
    """Predictions of ``model`` along ``axis`` (other fields at their defaults): ``[(value, Estimate)]``."""
    from scaling.app.estimate import predict
    from scaling.registry import ModelSpec, resolve_model

    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    law_obj = _law(law)
    out = []
    for v in values if values is not None else sweep_values(spec, axis):
        out.append((v, predict(spec, law=law_obj, **predict_kwargs, **_setting_kwargs(axis, v))))
    return out


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

    return f"{describe_setting(setting)}, {setting.steps} steps"


def breakdown_figure(estimates: Sequence[Any], title: str | None = None):
    """Stacked bars of energy per component (Wh), one panel per modality, the total's 90% interval on top."""
    go, make_subplots = _go()
    modalities = [m for m in ("video", "image", "audio") if any(e.setting.modality == m for e in estimates)]
    fig = make_subplots(rows=1, cols=max(1, len(modalities)), subplot_titles=[f"{m} models" for m in modalities],
                        horizontal_spacing=0.08)
    other: dict[str, str] = {}
    roles: list[str] = []
    for e in estimates:
        for c in e.components:
            if c.role not in roles:
                roles.append(c.role)
    for col, modality in enumerate(modalities, 1):
        group = [e for e in estimates if e.setting.modality == modality]
        names = [_short(e.model_id) for e in group]
        for role in roles:
            ys, texts = [], []
            for e in group:
                c = next((c for c in e.components if c.role == role), None)
                ys.append(None if c is None else c.energy_j / J_PER_WH)
                texts.append("" if c is None else
                             f"{c.energy_j:,.0f} J ({c.energy_lo_j:,.0f} - {c.energy_hi_j:,.0f}), "
                             f"{c.energy_j / e.energy_j:.0%} of total")
            fig.add_trace(go.Bar(x=names, y=ys, name=role, legendgroup=role, showlegend=col == 1,
                                 marker_color=_role_color(role, other), hovertext=texts,
                                 hovertemplate="%{x}<br>" + role + ": %{y:.3g} Wh<br>%{hovertext}<extra></extra>"),
                          row=1, col=col)
        fig.add_trace(go.Scatter(
            x=names, y=[e.energy_j / J_PER_WH for e in group], mode="markers", name="total, 90% interval",
            legendgroup="total", showlegend=col == 1, marker=dict(color="black", symbol="line-ew-open", size=14),
            error_y=dict(type="data", symmetric=False, color="black",
                         array=[(e.energy_hi_j - e.energy_j) / J_PER_WH for e in group],
                         arrayminus=[(e.energy_j - e.energy_lo_j) / J_PER_WH for e in group]),
            hovertext=[f"{_describe(e.setting)}; total {e.energy_j:,.0f} J ({e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f})"
                       for e in group],
            hovertemplate="%{x}<br>%{hovertext}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text="energy per generation (Wh)" if col == 1 else None, row=1, col=col)
    fig.update_layout(barmode="stack", title=title or "Energy per component (default setting of each model)",
                      height=480, legend=dict(orientation="h", y=-0.25), margin=dict(t=70, b=120))
    return fig


def curves_figure(model, *, axes: Sequence[str] | None = None, law: Any = None, title: str | None = None,
                  curves: dict[str, list] | None = None, **predict_kwargs: Any):
    """Energy (Wh) of ``model`` against each axis of its modality, with the 90% interval band."""
    from scaling.registry import ModelSpec, resolve_model

    go, make_subplots = _go()
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    axes = list(axes or AXES_BY_MODALITY[spec.modality])
    if curves is None:
        curves = {a: scaling_curve(spec, a, law=law, **predict_kwargs) for a in axes}
    fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[f"energy vs {AXIS_TITLES[a].split(' (')[0]}"
                                                               for a in axes], horizontal_spacing=0.07)
    for col, axis in enumerate(axes, 1):
        pts = curves[axis]
        xs = [_x_of(axis, v) for v, _ in pts]
        ests = [e for _, e in pts]
        first = col == 1
        fig.add_trace(go.Scatter(x=xs, y=[e.energy_hi_j / J_PER_WH for e in ests], mode="lines",
                                 line=dict(width=0), showlegend=False, hoverinfo="skip", legendgroup="band"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=xs, y=[e.energy_lo_j / J_PER_WH for e in ests], mode="lines",
                                 line=dict(width=0), fill="tonexty", fillcolor="rgba(245,133,24,0.25)",
                                 name="90% interval", showlegend=first, hoverinfo="skip", legendgroup="band"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(
            x=xs, y=[e.energy_j / J_PER_WH for e in ests], mode="lines+markers", name="predicted energy",
            showlegend=first, legendgroup="total", line=dict(color="#F58518", width=2),
            hovertext=[f"{_x_label(axis, v)}: {e.energy_j:,.0f} J ({e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f}), "
                       f"{e.time_s:.3g} s" for v, e in pts],
            hovertemplate="%{hovertext}<extra></extra>"), row=1, col=col)
        default = spec.defaults
        dx = _default_x(axis, default)
        if dx is not None:
            fig.add_vline(x=dx, line=dict(color="grey", dash="dot", width=1), row=1, col=col)
        fig.update_xaxes(title_text=AXIS_TITLES[axis], row=1, col=col)
        fig.update_yaxes(title_text="energy per generation (Wh)" if first else None, rangemode="tozero",
                         row=1, col=col)
    e0 = curves[axes[0]][0][1]
    fig.update_layout(
        title=title or (f"{spec.id} on {e0.gpu_name}, {e0.precision}: scaling curves "
                        f"(dotted line: default setting; other fields at their defaults)"),
        height=400, legend=dict(orientation="h", y=-0.22), margin=dict(t=80, b=100))
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


def gpu_figure(estimates: Sequence[Any], title: str | None = None):
    """Energy and time of one setting across GPUs, ranked; never-measured GPUs hatched and grey."""
    go, make_subplots = _go()
    ests = sorted(estimates, key=lambda e: e.energy_j)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("energy per generation (Wh), 90% interval",
                                                        "time per generation (s), 90% interval"),
                        horizontal_spacing=0.1)
    for measured, name, color, pattern in ((True, "GPU in the law's data", MEASURED_COLOR, ""),
                                           (False, "never measured: predicted from registry figures",
                                            UNMEASURED_COLOR, "/")):
        group = [e for e in ests if bool(e.gpu_measured) == measured]
        if not group:
            continue
        labels = [e.gpu for e in group]
        hover = [f"{e.gpu_name}: {e.energy_j:,.0f} J ({e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f}), "
                 f"{e.time_s:.3g} s ({e.time_lo_s:.3g} - {e.time_hi_s:.3g})"
                 + ("" if measured else " - never measured") for e in group]
        marker = dict(color=color, pattern=dict(shape=pattern), line=dict(color="#333", width=0.5))
        fig.add_trace(go.Bar(
            x=labels, y=[e.energy_j / J_PER_WH for e in group], name=name, legendgroup=name, marker=marker,
            error_y=dict(type="data", symmetric=False, array=[(e.energy_hi_j - e.energy_j) / J_PER_WH for e in group],
                         arrayminus=[(e.energy_j - e.energy_lo_j) / J_PER_WH for e in group]),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(
            x=labels, y=[e.time_s for e in group], name=name, legendgroup=name, showlegend=False, marker=marker,
            error_y=dict(type="data", symmetric=False, array=[e.time_hi_s - e.time_s for e in group],
                         arrayminus=[e.time_s - e.time_lo_s for e in group]),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"), row=1, col=2)
    order = [e.gpu for e in ests]
    for col, values in ((1, [e.energy_j for e in ests]), (2, [e.time_s for e in ests])):
        fig.update_xaxes(categoryorder="array", categoryarray=order, tickangle=-45, row=1, col=col)
        # a wide spread (old boards at fp32 next to new ones) would flatten the rest: log axis
        if min(values) > 0 and max(values) / min(values) > 20:
            fig.update_yaxes(type="log", row=1, col=col)
    e0 = ests[0]
    fig.update_layout(
        title=title or f"{e0.model_id}, {_describe(e0.setting)}, {e0.precision}: GPUs ranked by energy",
        height=460, barmode="relative", legend=dict(orientation="h", y=-0.4), margin=dict(t=80, b=150))
    return fig


# -- the page -----------------------------------------------------------------------------------

def _law(law: Any):
    from fits.law_file import load_law

    if law is None or isinstance(law, str) or hasattr(law, "__fspath__"):
        return load_law(law)
    return law


def _try(skipped: list[str], what: str, fn, strict: bool):
    """Run ``fn``; a model the toolkit cannot predict yet is skipped (and said so) unless ``strict``."""
    try:
        return fn()
    except (ScalingError, NotImplementedError) as exc:
        if strict:
            raise
        skipped.append(f"{what}: {exc}")
        return None


_HEAD_SCRIPT = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push('error: ' + (e.message || e.type)); }, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('unhandled rejection: ' + e.reason); });
(function () {
  var ce = console.error;
  console.error = function () { window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
                                return ce.apply(console, arguments); };
})();
window.addEventListener('load', function () {
  setTimeout(function () {
    var n = document.getElementById('report-status');
    var plots = document.querySelectorAll('.js-plotly-plot'), drawn = 0;
    for (var i = 0; i < plots.length; i++) { if (plots[i].querySelector('svg.main-svg')) { drawn++; } }
    n.setAttribute('data-charts', String(drawn));
    n.setAttribute('data-errors', JSON.stringify(window.__errors));
    n.setAttribute('data-ready', '1');
  }, 0);
});
"""

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0 auto; max-width: 1320px;
       padding: 16px 24px 48px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta, p.note { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
ul.skipped { color: #8a4b00; font-size: 0.9em; }
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def build_report(
    models: Sequence[str] | None = None,
    *,
    gpu: str | None = None,
    gpus: Sequence[str] | None = None,
    precision: str | None = None,
    law: Any = None,
    region: str | None = None,
    intensity: float | None = None,
    pue: float = 1.0,
    title: str = "Energy of diffusion-model inference: predicted",
) -> Report:
    """Build the report page.

    ``models``: the models of the breakdown, the curves and (the first one) the GPU comparison;
    by default a set of registered models, the curves of one video, two image and one audio
    model, and the GPU comparison of Wan2.1 at 480p, 81 frames. A named model that cannot be
    predicted is an error; a default one is skipped and listed on the page. ``gpu``: the GPU of
    the breakdown and the curves (default: the registry's default GPU); ``gpus``: the GPUs
    compared (default: every registry GPU).
    """
    from scaling._version import __version__
    from scaling.hardware import DEFAULT_GPU, list_gpus, resolve_gpu
    from scaling.app.estimate import predict
    from scaling.registry import resolve_model

    go, _ = _go()
    strict = bool(models)
    names = list(models) if models else list(DEFAULT_BREAKDOWN_MODELS)
    curve_names = list(models) if models else list(DEFAULT_CURVE_MODELS)
    specs = {n: resolve_model(n) for n in dict.fromkeys(names + curve_names)}
    gpu_spec = resolve_gpu(gpu or DEFAULT_GPU)
    law_obj = _law(law)
    common = dict(gpu=gpu_spec, law=law_obj, region=region, intensity=intensity, pue=pue, precision=precision)
    skipped: list[str] = []
    sections: list[str] = []
    figures: list[tuple[str, Any]] = []
    fig_meta: list[dict[str, Any]] = []

    # 1. breakdown
    estimates = [e for e in (_try(skipped, f"breakdown of {specs[n].id}", lambda n=n: predict(specs[n], **common),
                                  strict) for n in names) if e is not None]
    if not estimates:
        raise ScalingError("no model of the report could be predicted: " + "; ".join(skipped))
    ref = estimates[0]
    law_name = ref.law
    figures.append(("fig-breakdown", breakdown_figure(estimates)))
    fig_meta.append({"id": "fig-breakdown", "kind": "breakdown", "models": [e.model_id for e in estimates]})
    rows = []
    for e in estimates:
        comp = {c.role: c for c in e.components}
        rows.append([_short(e.model_id), _describe(e.setting)]
                    + [_fmt_j(comp[r].energy_j) if r in comp else "-" for r in ("text_encoder", "denoiser", "decoder", "vocoder")]
                    + [f"{e.energy_j:,.0f}", f"{e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f}", f"{e.energy_wh:.3g}",
                       f"{e.time_s:.3g}", f"{e.co2e_g:.3g}"])
    sections.append(
        "<h2>Energy per component</h2>"
        f"<p class='note'>Each model at its default setting on {html.escape(gpu_spec.name)}. Bars stack the predicted "
        "GPU energy of the text encoder(s), the denoiser (all steps, both CFG passes), the decoder and the vocoder; "
        "the black mark is the total with its 90% interval.</p>"
        "<div id='slot-fig-breakdown'></div>"
        + _table(["model", "setting", "text encoder J", "denoiser J", "decoder J", "vocoder J", "total J",
                  f"{ref.interval:.0%} interval J", "total Wh", "time s", "CO2e g"], rows))

    # 2. scaling curves
    curve_html = ["<h2>Scaling curves</h2><p class='note'>Predicted energy per generation against one setting "
                  "at a time, the others at the model's defaults; the band is the 90% interval of the law. "
                  "Resolutions keep the model's default aspect ratio; frame counts follow the model's "
                  "<code>k*step+1</code> rule.</p>"]
    for n in dict.fromkeys(curve_names):
        spec = specs[n]
        axes = AXES_BY_MODALITY[spec.modality]
        curves = _try(skipped, f"scaling curves of {spec.id}",
                      lambda spec=spec, axes=axes: {a: scaling_curve(spec, a, **common) for a in axes}, strict)
        if curves is None:
            continue
        fid = f"fig-curves-{len(figures)}"
        figures.append((fid, curves_figure(spec, axes=axes, curves=curves)))
        fig_meta.append({"id": fid, "kind": "curves", "model": spec.id, "modality": spec.modality, "axes": list(axes)})
        curve_html.append(f"<h3>{html.escape(spec.id)} ({spec.modality})</h3><div id='slot-{fid}'></div>")
    sections.append("".join(curve_html))

    # 3. GPU comparison
    gpu_model = specs[names[0]] if models else resolve_model("wan2.1")
    gpu_kwargs = {} if models else {"res": "480p", "frames": 81}
    gpu_list = [resolve_gpu(g) for g in gpus] if gpus else list_gpus()
    by_gpu = [e for e in (_try(skipped, f"{gpu_model.id} on {g.key}",
                               lambda g=g: predict(gpu_model, **{**common, "gpu": g}, **gpu_kwargs), bool(gpus))
                          for g in gpu_list) if e is not None]
    if by_gpu:
        figures.append(("fig-gpus", gpu_figure(by_gpu)))
        fig_meta.append({"id": "fig-gpus", "kind": "gpus", "model": gpu_model.id, "gpus": [e.gpu for e in by_gpu],
                         "never_measured": [e.gpu for e in by_gpu if not e.gpu_measured]})
        best = min(e.energy_j for e in by_gpu)
        rows = [[e.gpu, e.gpu_name, f"{e.energy_j:,.0f}", f"{e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f}",
                 f"{e.energy_j / best:.2f}x", f"{e.time_s:.3g}", f"{e.co2e_g:.3g}",
                 "measured" if e.gpu_measured else "never measured"] for e in sorted(by_gpu, key=lambda e: e.energy_j)]
        sections.append(
            "<h2>GPU comparison</h2>"
            f"<p class='note'>{html.escape(gpu_model.id)}, {html.escape(_describe(by_gpu[0].setting))}, "
            f"{html.escape(by_gpu[0].precision)}, ranked by predicted energy. Hatched grey bars are GPUs the law never "
            "saw a measurement on: their figures come from the hardware registry (peak FLOP/s, memory bandwidth, "
            "board power) and carry the widest uncertainty.</p><div id='slot-fig-gpus'></div>"
            + _table(["gpu", "name", "energy J", f"{ref.interval:.0%} interval J", "vs best", "time s", "CO2e g",
                      "gpu data"], rows))

    if skipped:
        sections.append("<h2>Not shown</h2><ul class='skipped'>"
                        + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")

    # render: plotly.js inlined once (with the first figure), then every figure in its slot
    body = "".join(sections)
    for i, (fid, fig) in enumerate(figures):
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=fid,
                          config={"displaylogo": False, "responsive": True})
        body = body.replace(f"<div id='slot-{fid}'></div>", div, 1)
    meta = {"law": law_name, "figures": fig_meta, "skipped": skipped}
    carbon = (f"CO2e at {ref.intensity_g_per_kwh:g} gCO2e/kWh [{ref.intensity_source}], PUE {ref.pue:g}")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{_CSS}</style><script>{_HEAD_SCRIPT}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='meta'>Law: <b>{html.escape(law_name)}</b> &middot; GPU: {html.escape(gpu_spec.name)} "
        f"({html.escape(gpu_spec.key)}) &middot; precision: {html.escape(ref.precision)} &middot; "
        f"{html.escape(carbon)} &middot; diffusion-energy-scaling {html.escape(__version__)}</p>"
        "<p class='note'>Every figure on this page is an estimate of GPU energy from a fitted scaling law on the "
        "FLOPs of each component (CPU and RAM not included), not a measurement. Intervals are 90%.</p>"
        f"{body}"
        "<div id='report-status' hidden data-ready='0'></div>"
        f"<script type='application/json' id='report-meta'>{_json_in_html(meta)}</script>"
        "</body></html>"
    )
    return Report(html=page, figures=[f for f, _ in figures], skipped=skipped, law=law_name, meta=meta)


def write_report(path: str | Path, **kwargs: Any) -> Report:
    """Build the report (see :func:`build_report`) and write it to ``path``."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ScalingError(f"cannot write {path}: folder {path.parent} does not exist")
    check_output(path, inputs=[kwargs.get("law")])  # before the work: a folder, a device, the law file
    report = build_report(**kwargs)
    write_text_atomic(path, report.html, inputs=[kwargs.get("law")])
    return report


def _fmt_j(j: float) -> str:
    return f"{j:,.0f}" if abs(j) >= 100 else f"{j:.3g}"


def _json_in_html(obj: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
