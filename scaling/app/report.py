"""One self-contained HTML report of predicted energy: breakdown, scaling curves, GPU comparison.

``write_report("report.html")`` (or ``scaling report --out report.html``) writes a single page
with plotly.js inlined, so it opens offline. It holds:

- the energy per component (text encoder, denoiser, decoder, vocoder) of several models at
  their default settings, per output: grouped bars on a log axis (the denoiser is often 99% of
  the total, which a linear stack hides) and a table of each component's share;
- scaling curves with their 90% interval bands: energy per output against resolution, frames,
  steps and audio length, one figure per model (by default a video, two image and an audio model);
- a GPU comparison: one model's setting across GPUs, ranked by energy per output among the GPUs
  it fits; never-measured GPUs hatched, GPUs it does not fit shown apart and not ranked.

The data come from the DataFrame API (``scaling.predict_grid(...).to_frame()`` and
``scaling.compare(...).to_frame()``, scaling/app/frames.py), so the page shows the columns a
notebook would. Every axis title names its unit and whether it is per output or per call.
Every figure is a prediction of the law, never a measurement. plotly is imported lazily, only
when a figure is drawn: the predict path never pulls it in.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from scaling._files import HTML_SUFFIXES, check_output, write_text_atomic
from scaling.app.report_figures import (  # noqa: F401  (the figures' names, re-exported)
    AXES_BY_MODALITY, AXIS_TITLES, ENERGY_TITLE, ROLE_COLORS, ROLES, _component_energy, _describe, _fmt_j,
    _go, _grid_kwargs, _law, _short, breakdown_figure, curves_figure, gpu_figure, log_axis, scaling_curve,
    sweep_values, tradeoff_figure,
)
from scaling.errors import ScalingError

DEFAULT_BREAKDOWN_MODELS = (
    "wan2.1", "wan2.1-14b", "cogvideox-5b", "sd1.5", "sd2.1", "sdxl", "flux-dev", "sd3.5-large",
    "audioldm2", "stable-audio-open",
)
"""Models of the breakdown chart when none are named (each at its default setting)."""

DEFAULT_CURVE_MODELS = ("wan2.1", "sd2.1", "flux-dev", "audioldm2")
"""One default model per modality (two for images) for the scaling curves."""

TRADEOFF_MODELS = ("wan2.1-14b", "wan2.1")
"""Models of the several-GPU time-energy view (480p, 81 frames, H100 x 1, 2, 4, 8)."""


@dataclass
class Report:
    """A built report: the page and what it holds."""

    html: str
    figures: list[str] = field(default_factory=list)     # div ids of the plotly figures, in order
    skipped: list[str] = field(default_factory=list)     # what could not be predicted, and why
    law: str = ""
    meta: dict[str, Any] = field(default_factory=dict)   # per figure: kind, model, modality, GPUs, axis titles


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


def _missing(v) -> bool:
    import pandas as pd

    return v is None or bool(pd.isna(v))


def _axis_titles(fig) -> list[str]:
    """Every axis title of a figure (for the page's metadata: a test checks their units)."""
    out = []
    for name in dir(fig.layout):
        if name.startswith(("xaxis", "yaxis")):
            t = getattr(fig.layout, name).title.text
            if t:
                out.append(t)
    return out


def _breakdown(specs, names, common, skipped, strict):
    """(estimates, frame) of the breakdown: one ``predict_grid`` row per model at its default setting."""
    import pandas as pd

    from scaling.app.planning import predict_grid

    grids = [g for g in (_try(skipped, f"breakdown of {specs[n].id}",
                              lambda n=n: predict_grid(specs[n], **_grid_kwargs(**common)), strict) for n in names)
             if g is not None]
    if not grids:
        raise ScalingError("no model of the report could be predicted: " + "; ".join(skipped))
    return [e for g in grids for e in g.estimates], pd.concat([g.to_frame() for g in grids], ignore_index=True)


def _gpu_comparison(model, gpu_list, common, setting, skipped, strict):
    """The ``Comparison`` of ``model`` across ``gpu_list`` (each GPU on its own when one fails and not ``strict``)."""
    from scaling.app.planning import compare, rank_rows

    kw = dict(law=common["law"], region=common["region"], intensity=common["intensity"], pue=common["pue"],
              precision=common["precision"], **setting)
    try:
        return compare(model, gpus=[g.key for g in gpu_list], **kw)
    except (ScalingError, NotImplementedError):
        if strict:
            raise
    rows = []
    for g in gpu_list:
        res = _try(skipped, f"{model.id} on {g.key}", lambda g=g: compare(model, gpus=[g.key], **kw), False)
        rows += list(res or [])
    return rank_rows(rows)


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
    from scaling.app.commands._out import fmt_g, fmt_s, fmt_wh, plural
    from scaling.app.planning import compare
    from scaling.hardware import DEFAULT_GPU, list_gpus, resolve_gpu
    from scaling.registry import resolve_model

    _go()
    strict = bool(models)
    names = list(models) if models else list(DEFAULT_BREAKDOWN_MODELS)
    curve_names = list(models) if models else list(DEFAULT_CURVE_MODELS)
    specs = {n: resolve_model(n) for n in dict.fromkeys(names + curve_names)}
    gpu_spec = resolve_gpu(gpu or DEFAULT_GPU)
    if gpus:  # before any work: each GPU once (h100 and h100-sxm are one), named as the user wrote them
        from scaling.app.planning import check_named_once

        check_named_once("GPU", "--gpus", gpus, lambda g: resolve_gpu(g).key)
    law_obj = _law(law)
    common = dict(gpu=gpu_spec.key, law=law_obj, region=region, intensity=intensity, pue=pue, precision=precision)
    skipped: list[str] = []
    sections: list[str] = []
    figures: list[tuple[str, Any]] = []
    fig_meta: list[dict[str, Any]] = []

    def add(fid: str, fig, **meta) -> None:
        figures.append((fid, fig))
        fig_meta.append({"id": fid, **meta, "axis_titles": _axis_titles(fig)})

    # 1. breakdown
    estimates, frame = _breakdown(specs, names, common, skipped, strict)
    ref = estimates[0]
    law_name = ref.law
    add("fig-breakdown", breakdown_figure(estimates), kind="breakdown", models=[e.model_id for e in estimates])
    roles = [r for r in ROLES if any(_component_energy(e, r) for e in estimates)]
    rows = []
    for e, rec in zip(estimates, frame.itertuples()):
        cells = []
        for r in roles:
            part = _component_energy(e, r)
            cells.append("-" if part is None else
                         f"{_fmt_j(part[0])} ({part[0] * e.setting.n_outputs / e.energy_j:.1%})")
        rows.append([_short(e.model_id), _describe(e.setting)] + cells
                    + [_fmt_j(rec.energy_per_output_j),
                       f"{_fmt_j(rec.energy_per_output_lo_j)} - {_fmt_j(rec.energy_per_output_hi_j)}",
                       fmt_wh(rec.energy_per_output_j), fmt_s(rec.time_s), fmt_g(rec.co2e_per_output_g)])
    sections.append(
        "<h2>Energy per component</h2>"
        f"<p class='note'>Each model at its default setting (batch 1: one output per call) on "
        f"{html.escape(gpu_spec.name)}. Bars: the predicted GPU energy per output of the text encoder(s), the "
        "denoiser (all steps, both CFG passes), the decoder and the vocoder, with their 90% intervals, on a log "
        "axis (the denoiser is often 99% of the total: a linear stack would hide the rest); the black mark is the "
        "total with its 90% interval. The table gives each component's share of the total.</p>"
        "<div id='slot-fig-breakdown'></div>"
        + _table(["model", "setting"] + [f"{r.replace('_', ' ')} per output (share)" for r in roles]
                 + ["total per output", f"{ref.interval:.0%} interval", "total Wh per output", "time per call",
                    "CO2e per output"], rows))

    # 2. scaling curves
    curve_html = ["<h2>Scaling curves</h2><p class='note'>Predicted energy per output against one setting "
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
        add(fid, curves_figure(spec, axes=axes, curves=curves), kind="curves", model=spec.id,
            modality=spec.modality, axes=list(axes))
        curve_html.append(f"<h3>{html.escape(spec.id)} ({spec.modality})</h3><div id='slot-{fid}'></div>")
    sections.append("".join(curve_html))

    # 3. GPU comparison
    gpu_model = specs[names[0]] if models else resolve_model("wan2.1")
    gpu_setting = {} if models else {"res": "480p", "frames": 81}
    gpu_list = [resolve_gpu(g) for g in gpus] if gpus else list_gpus()
    comparison = _gpu_comparison(gpu_model, gpu_list, common, gpu_setting, skipped, bool(gpus))
    if len(comparison):
        by_gpu = comparison.to_frame()
        add("fig-gpus", gpu_figure(by_gpu), kind="gpus", model=gpu_model.id, gpus=by_gpu["gpu"].tolist(),
            never_measured=by_gpu.loc[~by_gpu["gpu_measured"], "gpu"].tolist(),
            not_fitting=by_gpu.loc[~by_gpu["fits_memory"], "gpu"].tolist())
        best = comparison.best.energy_per_output_j if comparison.best else None
        rows = [["-" if _missing(r.rank) else int(r.rank), r.gpu, r.gpu_name,
                 _fmt_j(r.energy_per_output_j), f"{_fmt_j(r.energy_per_output_lo_j)} - {_fmt_j(r.energy_per_output_hi_j)}",
                 f"{r.energy_per_output_j / best:.2f}x" if best and r.fits_memory else "-", fmt_s(r.time_s),
                 fmt_g(r.co2e_per_output_g),
                 ("needs CPU offload" if r.memory_fit == "with model CPU offload" else "does not fit")
                 if not r.fits_memory else r.memory_fit,
                 "measured" if r.gpu_measured else "never measured"] for r in by_gpu.itertuples()]
        setting = comparison[0].estimate.setting
        sections.append(
            "<h2>GPU comparison</h2>"
            f"<p class='note'>{html.escape(gpu_model.id)}, {html.escape(_describe(setting))}, "
            f"{html.escape(str(by_gpu['precision'].iloc[0]))} ({plural(setting.n_outputs, 'output')} per call), "
            "ranked by predicted energy per output among the GPUs it fits. Hatched grey bars are GPUs the law never "
            "saw a measurement on: their figures come from the hardware registry (peak FLOP/s, memory bandwidth, "
            "board power) and carry the widest uncertainty. Orange dotted outlines: the pipeline fits only with model "
            "CPU offload, whose transfers the law does not price; red outlines: it does not fit even with offload. "
            "Neither is ranked.</p><div id='slot-fig-gpus'></div>"
            + _table(["#", "gpu", "name", "energy per output", f"{ref.interval:.0%} interval", "vs best",
                      "time per call", "CO2e per output", "memory", "gpu data"], rows))

    # 4. several GPUs: the time-energy trade-off per model and GPU count
    if not models:
        trade_html = ["<h2>Several GPUs: time against energy</h2><p class='note'>Each point is one GPU count and "
                      "sequence-parallel plan (xDiT Ulysses / ring, CFG parallel) on H100, predicted by the multi-GPU "
                      "law fitted on ML.ENERGY v3: more GPUs cut the time per call and cost energy, because every GPU "
                      "draws power for the whole call. Hollow markers are extrapolations (a plan or GPU the law never "
                      "saw). Error bars: 90% intervals of time and energy.</p>"]
        for key in TRADEOFF_MODELS:
            res = _try(skipped, f"GPU-count trade-off of {key}",
                       lambda key=key: compare(key, gpus=["h100"], gpu_counts=[1, 2, 4, 8], law=law_obj,
                                               res="480p", frames=81).to_frame(), False)
            if res is None or res.empty:
                continue
            fid = f"fig-tradeoff-{len(figures)}"
            add(fid, tradeoff_figure(res), kind="tradeoff", model=str(res["model"].iloc[0]),
                gpu_counts=sorted(int(n) for n in res["gpu_count"].unique()))
            trade_html.append(f"<h3>{html.escape(str(res['model'].iloc[0]))}</h3><div id='slot-{fid}'></div>")
        if len(trade_html) > 1:
            sections.append("".join(trade_html))

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
        "FLOPs of each component (CPU and RAM not included), not a measurement. Energy and CO2e are per output "
        "(one image, video or clip); time is per call (one pipeline call, the latency of a request). Intervals "
        "are 90%.</p>"
        f"{body}"
        "<div id='report-status' hidden data-ready='0'></div>"
        f"<script type='application/json' id='report-meta'>{_json_in_html(meta)}</script>"
        "</body></html>"
    )
    return Report(html=page, figures=[f for f, _ in figures], skipped=skipped, law=law_name, meta=meta)


def check_report_output(path: str | Path | None, *, law: str | Path | None = None, what: str = "report") -> Path:
    """Check the report's file before any work (:func:`scaling._files.check_output`): a ``.html`` /
    ``.htm`` name in an existing folder, not the law file, not a folder or a device."""
    return check_output(path, inputs=[law], what=what, suffixes=HTML_SUFFIXES)


def write_report(path: str | Path, **kwargs: Any) -> Report:
    """Build the report (see :func:`build_report`) and write it to ``path``."""
    check_report_output(path, law=kwargs.get("law"))  # before the work: the folder, the name, the law file
    path = Path(path)
    report = build_report(**kwargs)
    write_text_atomic(path, report.html, inputs=[kwargs.get("law")])
    return report


def _json_in_html(obj: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
