"""`scaling predict`: energy, time and CO2e of a generation, per component, with an interval."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands._common import add_parallel_args, add_setting_args, describe_setting, dump_json, fmt_flop, model_spec_from_args
from scaling.app.commands._out import (add_wide_arg, fmt_g, fmt_j, fmt_kwh, fmt_range, fmt_s, fmt_wh, plural,
                                       render_table)
from scaling.units import J_PER_KWH, S_PER_HOUR


def add_carbon_args(p) -> None:
    g = p.add_argument_group("carbon (offline: CodeCarbon's bundled country data)")
    g.add_argument("--region", type=T.nonempty("region"), help="ISO country code (FR, DE, US or FRA, DEU, USA)")
    g.add_argument("--intensity", type=T.intensity, metavar="G_PER_KWH", help="carbon intensity in gCO2e/kWh")
    g.add_argument("--pue", type=T.pue, default=1.0, help="power usage effectiveness of the facility (1.0 to 5.0, "
                   "default 1.0)")


def add_parser(sub):
    p = sub.add_parser("predict", help="predict energy, time and CO2e of a generation (no GPU needed)",
                       description="Predict energy (J, Wh), time and CO2e per component and in total, with a 90% "
                                   "interval, from the FLOP profile and a fitted law, per call (one pipeline call: "
                                   "batch x outputs-per-prompt outputs) and per output. Every figure is an estimate.")
    add_setting_args(p)
    add_parallel_args(p)
    add_carbon_args(p)
    p.add_argument("--count", type=T.count, default=1, metavar="OUTPUTS",
                   help="number of outputs (images, videos, clips; 1e6 is read as 1,000,000): fleet totals (kWh, "
                        "GPU-hours, CO2e) of count / outputs-per-call calls")
    p.add_argument("--law", metavar="LAW.json", type=T.nonempty("law"), help="a law fitted with `scaling fit --out` (default: the shipped law)")
    p.add_argument("--attention", metavar="VARIANT", action="append", type=T.nonempty("attention"),
                   help="attention variant, e.g. litefocus:r=0.1 | tome:ratio=0.5 | window:size=512, each with an "
                        "optional ,kernel=sdpa|eager (full:kernel=eager: full attention, score matrix materialised; "
                        "see `scaling profile`)")
    p.add_argument("--allow-offload", action="store_true",
                   help="predict a pipeline that fits the GPU only with model CPU offload (refused without it): the "
                        "estimate is then the GPU-side work alone, a lower bound; the offload transfers (the weights "
                        "moved to the GPU every call) are not priced")
    p.add_argument("--baseline", action="store_true",
                   help="also predict the baseline (model defaults: bf16, default steps, batch 1, full attention; "
                        "same model, resolution, guidance and GPU) and print it next to this what-if, per output, "
                        "with the ratio and both intervals")
    p.add_argument("--json", action="store_true", help="machine-readable output (per call and per output fields)")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from scaling.app.estimate import predict

    spec = model_spec_from_args(args)
    est = predict(spec, gpu=args.gpu, law=args.law, region=args.region, intensity=args.intensity, pue=args.pue,
                  count=args.count, attention=";".join(args.attention) if args.attention else None,
                  allow_offload=getattr(args, "allow_offload", False), gpus=getattr(args, "gpus", None),
                  parallel=getattr(args, "parallel", None), **T.setting_kwargs(args))
    base = predict_baseline(spec, args) if getattr(args, "baseline", False) else None
    if args.json:
        d = to_json(est, args.count)
        if base is not None:
            d["baseline"] = to_json(base, args.count)
            d["whatif_vs_baseline"] = compare_to_baseline(est, base)
        print(dump_json(d))
        return 0
    print(render(est, gpu_is_default=args.gpu is None, outputs=args.count, wide=getattr(args, "wide", False),
                 prompt_tokens_set=args.prompt_tokens is not None))
    if base is not None:
        print("")
        print(render_baseline(est, base, ";".join(args.attention) if args.attention else None))
    return 0


# -- per call and per output ------------------------------------------------------------------

def per_output(est) -> dict:
    """The per-output figures of an estimate (its per-call figures / outputs per call), and the per-call ones
    under explicit names. Read from the estimate where it has them, computed here where it does not."""
    n = est.setting.n_outputs
    d = est.to_dict() if hasattr(est, "to_dict") else {}

    def get(name, value):
        v = d.get(name, getattr(est, name, None))
        return value if v is None or callable(v) else v

    return {
        "n_outputs": n,
        "energy_per_call_j": est.energy_j, "energy_per_call_lo_j": est.energy_lo_j,
        "energy_per_call_hi_j": est.energy_hi_j,
        "energy_per_output_j": get("energy_per_output_j", est.energy_j / n),
        "energy_per_output_lo_j": get("energy_per_output_lo_j", est.energy_lo_j / n),
        "energy_per_output_hi_j": get("energy_per_output_hi_j", est.energy_hi_j / n),
        "time_per_call_s": est.time_s, "time_per_call_lo_s": est.time_lo_s, "time_per_call_hi_s": est.time_hi_s,
        "time_per_output_s": get("time_per_output_s", est.time_s / n),
        "co2e_per_call_g": est.co2e_g, "co2e_per_call_lo_g": est.co2e_lo_g, "co2e_per_call_hi_g": est.co2e_hi_g,
        "co2e_per_output_g": get("co2e_per_output_g", est.co2e_g / n),
        "co2e_per_output_lo_g": get("co2e_per_output_lo_g", est.co2e_lo_g / n),
        "co2e_per_output_hi_g": get("co2e_per_output_hi_g", est.co2e_hi_g / n),
    }


def fleet(est, outputs: int) -> dict:
    """Totals of ``outputs`` outputs (not calls): facility kWh (GPU energy x PUE), GPU-hours, kg CO2e."""
    p = per_output(est)
    n = p["n_outputs"]
    kwh = lambda j: j * outputs * est.pue / J_PER_KWH  # noqa: E731
    kg = lambda g: g * outputs / 1000.0  # noqa: E731
    return {"outputs": outputs, "calls": -(-outputs // n), "kwh": kwh(p["energy_per_output_j"]),
            "kwh_interval": [kwh(p["energy_per_output_lo_j"]), kwh(p["energy_per_output_hi_j"])],
            "gpu_hours": est.time_s / n * outputs / S_PER_HOUR,
            "co2e_kg": kg(p["co2e_per_output_g"]),
            "co2e_kg_interval": [kg(p["co2e_per_output_lo_g"]), kg(p["co2e_per_output_hi_g"])]}


def to_json(est, outputs: int) -> dict:
    """``Estimate.to_dict()`` with the per-output fields beside the per-call ones (``energy_j`` is per call)."""
    d = est.to_dict()
    for k, v in per_output(est).items():
        d.setdefault(k, v)
    d.setdefault("per", {"energy_j": "call", "time_s": "call", "co2e_g": "call", "components": "call",
                         "energy_per_output_j": "output", "fleet": f"{outputs} outputs"})
    return d


# -- --baseline -------------------------------------------------------------------------------

def predict_baseline(spec, args):
    """The baseline of a what-if: model defaults for precision (bf16), steps, batch (1) and attention (full).

    Everything else (resolution, frames, seconds, guidance, prompt tokens, GPU, law, carbon, --allow-offload) is
    the what-if's.
    """
    from scaling.app.estimate import predict

    kw = dict(T.setting_kwargs(args), batch_size=1, outputs_per_prompt=1, precision="bf16")
    kw.pop("steps", None)
    return predict(spec, gpu=args.gpu, law=args.law, region=args.region, intensity=args.intensity, pue=args.pue,
                   count=args.count, attention=None, allow_offload=getattr(args, "allow_offload", False), **kw)


def _per_output(est) -> tuple[float, float, float, float]:
    p = per_output(est)
    return p["energy_per_output_j"], p["energy_per_output_lo_j"], p["energy_per_output_hi_j"], p["time_per_output_s"]


def compare_to_baseline(est, base) -> dict:
    """Per-output energy and time of the what-if and the baseline, and their ratios."""
    e, lo, hi, t = _per_output(est)
    be, blo, bhi, bt = _per_output(base)
    return {"energy_per_output_j": e, "energy_per_output_interval_j": [lo, hi], "time_per_output_s": t,
            "baseline_energy_per_output_j": be, "baseline_energy_per_output_interval_j": [blo, bhi],
            "baseline_time_per_output_s": bt, "energy_ratio": e / be, "time_ratio": t / bt}


def _describe_whatif(s, attention: str | None) -> str:
    att = "full attention" if not attention else attention
    return f"{s.precision}, {plural(s.steps, 'step')}, batch {s.batch_size}" + \
        (f" x {s.outputs_per_prompt} outputs" if s.outputs_per_prompt > 1 else "") + f", {att}"


def render_baseline(est, base, attention: str | None = None) -> str:
    """The what-if next to its baseline, per output, with both intervals and the ratio."""
    c = compare_to_baseline(est, base)
    pct = f"{est.interval * 100:.0f}%"
    rows = [
        ["what-if", _describe_whatif(est.setting, attention), fmt_j(c["energy_per_output_j"]),
         fmt_range(*c["energy_per_output_interval_j"]), fmt_s(c["time_per_output_s"])],
        ["baseline", _describe_whatif(base.setting, None), fmt_j(c["baseline_energy_per_output_j"]),
         fmt_range(*c["baseline_energy_per_output_interval_j"]), fmt_s(c["baseline_time_per_output_s"])],
    ]
    lines = ["--- what-if against the baseline (model defaults: bf16, default steps, batch 1, full attention) ---",
             render_table(rows, ["", "setting", "energy/output", f"{pct} interval", "time/output"]),
             f"ratio      energy {c['energy_ratio']:.3f}x, time {c['time_ratio']:.3f}x per output (what-if / "
             "baseline;", "           the intervals are each prediction's own, not an interval of the ratio)"]
    return "\n".join(lines)


def _cfg(s) -> str:
    """``CFG 7.5``, ``no CFG``, or ``CFG forced`` where CFG is on at a scale that would not turn it on (the
    model's own default of 0, for a run that forced two passes)."""
    if not s.cfg:
        return "no CFG"
    g = s.guidance_scale
    return f"CFG {g:g}" if g is not None and g > 1 else "CFG forced (two passes, guidance scale not given)"


def describe_call(s, prompt_tokens_set: bool = False) -> str:
    """``768x768, 50 steps, CFG 7.5, batch 4 (4 outputs per call)``, with the prompt tokens where the user set
    them (``--prompt-tokens``)."""
    out = (f"{describe_setting(s)}, {plural(s.steps, 'step')}, "
           f"{_cfg(s)}, batch {s.batch_size}")
    if s.outputs_per_prompt > 1:
        out += f" x {s.outputs_per_prompt} outputs per prompt"
    out += f" ({plural(s.n_outputs, 'output')} per call)"
    return out + (f", {plural(s.prompt_tokens, 'prompt token')}" if prompt_tokens_set else "")


def shown_components(est) -> list:
    """The components that do work: a role with no FLOP and no energy (no vocoder) is left out."""
    return [c for c in est.components if c.flop or c.energy_j]


def render(est, gpu_is_default: bool = False, outputs: int | None = None, wide: bool = False,
           prompt_tokens_set: bool = False) -> str:
    s = est.setting
    n = s.n_outputs
    pct = f"{est.interval * 100:.0f}%"
    p = per_output(est)
    lines = [
        f"model      {est.model_id}",
        f"setting    {describe_call(s, prompt_tokens_set)}",
        f"gpu        {est.gpu_name} ({est.gpu})"
        f"{' - the default; choose with --gpu' if gpu_is_default else ''}"
        f"{'' if est.gpu_measured else ' - never measured: predicted from its registry figures'}",
        f"precision  {est.precision}",
        f"law        {est.law}",
        *([f"gpus       {est.gpu_count} x {est.gpu}, plan {est.plan}"] if est.plan else []),
        *(_offload_lines(est) if est.memory_fit == "with model CPU offload" else []),
        "",
    ]
    per = "call" if n > 1 else "output"
    header = ["component", f"FLOP per {per}", f"energy per {per}", f"{pct} interval"]
    if n > 1:
        header.append("per output")
    if wide:
        header += ["Wh per " + per] + ([f"{pct} interval per output"] if n > 1 else [])
    header.append(f"time per {per}")
    rows = []
    for c in list(shown_components(est)) + [est]:
        total = c is est
        lo, hi = c.energy_lo_j, c.energy_hi_j
        row = ["total" if total else c.role, fmt_flop(c.flop), fmt_j(c.energy_j), fmt_range(lo, hi)]
        if n > 1:
            row.append(fmt_j(c.energy_j / n))
        if wide:
            row += [fmt_wh(c.energy_j)] + ([fmt_range(lo / n, hi / n)] if n > 1 else [])
        row.append(fmt_s(c.time_s))
        rows.append(row)
    lines.append(render_table(rows, header, wide=wide, totals=1))
    lines.append("")
    e_out = (f"{fmt_j(p['energy_per_output_j'])} per output "
             f"({pct} interval {fmt_range(p['energy_per_output_lo_j'], p['energy_per_output_hi_j'])})")
    t_out = f"{fmt_s(p['time_per_output_s'])} per output"
    c_out = (f"{fmt_g(p['co2e_per_output_g'])} per output "
             f"({pct} interval {fmt_range(p['co2e_per_output_lo_g'], p['co2e_per_output_hi_g'], fmt_g)})")
    if n > 1:
        lines.append(f"energy     {fmt_j(est.energy_j)} per call ({pct} interval "
                     f"{fmt_range(est.energy_lo_j, est.energy_hi_j)}) = {fmt_wh(est.energy_j)} per call")
        lines.append(f"           {e_out}")
        lines.append(f"time       {fmt_s(est.time_s)} per call ({pct} interval "
                     f"{fmt_range(est.time_lo_s, est.time_hi_s, fmt_s)}); {t_out}")
        lines.append(f"CO2e       {fmt_g(est.co2e_g)} per call; {c_out}")
    else:
        lines.append(f"energy     {e_out} = {fmt_wh(est.energy_j)}")
        lines.append(f"time       {fmt_s(est.time_s)} per output ({pct} interval "
                     f"{fmt_range(est.time_lo_s, est.time_hi_s, fmt_s)})")
        lines.append(f"CO2e       {c_out}")
    lines.append(f"           at {est.intensity_g_per_kwh:g} gCO2e/kWh [{est.intensity_source}], PUE {est.pue:g}")
    if est.law_compute_time_s is not None and est.law_memory_time_s is not None and not est.plan:
        c_s, m_s = est.law_compute_time_s, est.law_memory_time_s
        lines.append(f"bound      {'memory' if m_s > c_s else 'compute'}-bound: the time law's compute term "
                     f"{fmt_s(c_s)}, memory term {fmt_s(m_s)} (FLOPs and bytes at its fitted rates on {est.gpu})")
    if est.plan:
        lines.append(f"power      {est.average_power_w:,.0f} W average over the call, all {est.gpu_count} GPUs together "
                     f"({est.average_power_w / est.gpu_count:,.0f} W per GPU)")
        lines.append("flags      " + ("extrapolated: " + "; ".join(est.extrapolation) if est.extrapolated
                                      else "none (inside the law's data)"))
    outputs = est.count if outputs is None else outputs
    if outputs > 1:
        f = fleet(est, outputs)
        calls = f" in {plural(f['calls'], 'call')}" if n > 1 else ""
        lines.append(f"fleet      {plural(outputs, 'output')}{calls}: {fmt_kwh(f['kwh'])} "
                     f"({fmt_range(*f['kwh_interval'], fmt_kwh)}), {fmt_hours_text(f['gpu_hours'])}, "
                     f"{fmt_g(f['co2e_kg'] * 1000)} CO2e ({fmt_range(*(v * 1000 for v in f['co2e_kg_interval']), fmt_g)})")
    lines.append("")
    lines.append("All figures are estimates from a fitted law (GPU energy; CPU and RAM not included), not measurements.")
    for note in est.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _offload_lines(est) -> list[str]:
    """What an estimate that fits only with model CPU offload (``--allow-offload``) means."""
    def gib(v):
        return "?" if v is None else f"{v:.1f}"

    return [f"memory     OFFLOADED (--allow-offload): needs {gib(est.memory_resident_gib)} GiB resident, the GPU has "
            f"{est.gpu_memory_gib:.0f} GiB; {gib(est.memory_offload_gib)} GiB with model CPU offload",
            "           the offload transfers are NOT priced: energy and time are the GPU-side work alone, "
            "a lower bound"]


def fmt_hours_text(h: float) -> str:
    return f"{h:,.0f} GPU-hours" if h >= 1000 else f"{h:.3g} GPU-hours"
