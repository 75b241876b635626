"""`scaling predict`: energy, time and CO2e of a generation, per component, with an interval."""

from __future__ import annotations

from scaling.app.commands._common import add_setting_args, describe_setting, dump_json, fmt_flop, model_spec_from_args, table


def add_carbon_args(p) -> None:
    g = p.add_argument_group("carbon (offline: CodeCarbon's bundled country data)")
    g.add_argument("--region", help="ISO country code (FR, DE, US or FRA, DEU, USA)")
    g.add_argument("--intensity", type=float, metavar="G_PER_KWH", help="carbon intensity in gCO2e/kWh")
    g.add_argument("--pue", type=float, default=1.0, help="power usage effectiveness of the facility (default 1.0)")


def add_parser(sub):
    p = sub.add_parser("predict", help="predict energy, time and CO2e of a generation (no GPU needed)",
                       description="Predict energy (J, Wh), time and CO2e per component and in total, with a 90% "
                                   "interval, from the FLOP profile and a fitted law. Every figure is an estimate.")
    add_setting_args(p)
    add_carbon_args(p)
    p.add_argument("--count", type=int, default=1, help="number of generations: fleet totals (kWh, GPU-hours, CO2e)")
    p.add_argument("--law", metavar="LAW.json", help="a law fitted with `scaling fit --out` (default: the shipped law)")
    p.add_argument("--attention", metavar="VARIANT", action="append",
                   help="attention variant, e.g. litefocus:r=0.1 | tome:ratio=0.5 | window:size=512 (see `scaling profile`)")
    p.add_argument("--baseline", action="store_true",
                   help="also predict the baseline (model defaults: bf16, default steps, batch 1, full attention; "
                        "same model, resolution, guidance and GPU) and print it next to this what-if, per output, "
                        "with the ratio and both intervals")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def fmt_j(j: float) -> str:
    if j >= 3.6e6:
        return f"{j / 3.6e6:.3g} kWh"
    if j >= 1e3:
        return f"{j / 1e3:.3g} kJ"
    return f"{j:.3g} J"


def run(args) -> int:
    from scaling.app.estimate import predict

    spec = model_spec_from_args(args)
    est = predict(spec, gpu=args.gpu, law=args.law, region=args.region, intensity=args.intensity, pue=args.pue,
                  count=args.count, attention=";".join(args.attention) if args.attention else None, res=args.res, frames=args.frames, seconds=args.seconds, steps=args.steps,
                  guidance=args.guidance, cfg=args.cfg, batch_size=args.batch,
                  outputs_per_prompt=args.outputs_per_prompt, precision=args.precision)
    base = predict_baseline(spec, args) if getattr(args, "baseline", False) else None
    if args.json:
        d = est.to_dict()
        if base is not None:
            d["baseline"] = base.to_dict()
            d["whatif_vs_baseline"] = compare_to_baseline(est, base)
        print(dump_json(d))
        return 0
    print(render(est, gpu_is_default=args.gpu is None))
    if base is not None:
        print("")
        print(render_baseline(est, base, ";".join(args.attention) if args.attention else None))
    return 0


# -- --baseline -------------------------------------------------------------------------------

def predict_baseline(spec, args):
    """The baseline of a what-if: model defaults for precision (bf16), steps, batch (1) and attention (full).

    Everything else (resolution, frames, seconds, guidance, GPU, law, carbon) is the what-if's.
    """
    from scaling.app.estimate import predict

    return predict(spec, gpu=args.gpu, law=args.law, region=args.region, intensity=args.intensity, pue=args.pue,
                   count=args.count, attention=None, res=args.res, frames=args.frames, seconds=args.seconds,
                   steps=None, guidance=args.guidance, cfg=args.cfg, batch_size=1, outputs_per_prompt=1,
                   precision="bf16")


def _per_output(est) -> tuple[float, float, float, float]:
    n = est.setting.n_outputs
    return est.energy_j / n, est.energy_lo_j / n, est.energy_hi_j / n, est.time_s / n


def compare_to_baseline(est, base) -> dict:
    """Per-output energy and time of the what-if and the baseline, and their ratios."""
    e, lo, hi, t = _per_output(est)
    be, blo, bhi, bt = _per_output(base)
    return {"energy_per_output_j": e, "energy_per_output_interval_j": [lo, hi], "time_per_output_s": t,
            "baseline_energy_per_output_j": be, "baseline_energy_per_output_interval_j": [blo, bhi],
            "baseline_time_per_output_s": bt, "energy_ratio": e / be, "time_ratio": t / bt}


def _describe_whatif(s, attention: str | None) -> str:
    att = "full attention" if not attention else attention
    return f"{s.precision}, {s.steps} steps, batch {s.batch_size}" + \
        (f" x {s.outputs_per_prompt} outputs" if s.outputs_per_prompt > 1 else "") + f", {att}"


def render_baseline(est, base, attention: str | None = None) -> str:
    """The what-if next to its baseline, per output, with both intervals and the ratio."""
    c = compare_to_baseline(est, base)
    pct = f"{est.interval * 100:.0f}%"
    whatif = _describe_whatif(est.setting, attention)
    rows = [
        ["what-if", whatif, f"{c['energy_per_output_j']:,.0f}",
         f"{c['energy_per_output_interval_j'][0]:,.0f} - {c['energy_per_output_interval_j'][1]:,.0f}",
         f"{c['time_per_output_s']:.3g}"],
        ["baseline", _describe_whatif(base.setting, None), f"{c['baseline_energy_per_output_j']:,.0f}",
         f"{c['baseline_energy_per_output_interval_j'][0]:,.0f} - {c['baseline_energy_per_output_interval_j'][1]:,.0f}",
         f"{c['baseline_time_per_output_s']:.3g}"],
    ]
    lines = ["--- what-if against the baseline (model defaults: bf16, default steps, batch 1, full attention) ---",
             table(rows, ["", "setting", "energy J per output", f"{pct} interval J", "time s per output"]),
             f"ratio      energy {c['energy_ratio']:.3f}x, time {c['time_ratio']:.3f}x per output (what-if / baseline; "
             "the intervals are each prediction's own, not an interval of the ratio)"]
    return "\n".join(lines)


def render(est, gpu_is_default: bool = False) -> str:
    s = est.setting
    pct = f"{est.interval * 100:.0f}%"
    lines = [
        f"model      {est.model_id}",
        f"setting    {describe_setting(s)}, {s.steps} steps, "
        f"{'CFG ' + format(s.guidance_scale, 'g') if s.cfg else 'no CFG'}, batch {s.batch_size}",
        f"gpu        {est.gpu_name} ({est.gpu})"
        f"{' - the default; choose with --gpu' if gpu_is_default else ''}"
        f"{'' if est.gpu_measured else ' - never measured: predicted from its registry figures'}",
        f"precision  {est.precision}",
        f"law        {est.law}",
        "",
    ]
    rows = [[c.role, fmt_flop(c.flop), f"{c.energy_j:,.0f}", f"{c.energy_wh:.3g}",
             f"{c.energy_lo_j:,.0f} - {c.energy_hi_j:,.0f}", "-" if c.time_s is None else f"{c.time_s:.3g}"]
            for c in est.components]
    rows.append(["total", fmt_flop(est.flop), f"{est.energy_j:,.0f}", f"{est.energy_wh:.3g}",
                 f"{est.energy_lo_j:,.0f} - {est.energy_hi_j:,.0f}", f"{est.time_s:.3g}"])
    lines.append(table(rows, ["component", "FLOP", "energy J", "Wh", f"{pct} interval J", "time s"]))
    lines.append("")
    lines.append(f"time       {est.time_s:.3g} s ({pct} interval {est.time_lo_s:.3g} - {est.time_hi_s:.3g} s)")
    lines.append(f"CO2e       {est.co2e_g:.3g} g per generation ({pct} interval {est.co2e_lo_g:.3g} - "
                 f"{est.co2e_hi_g:.3g} g) at {est.intensity_g_per_kwh:g} gCO2e/kWh [{est.intensity_source}], PUE {est.pue:g}")
    if est.count > 1:
        lo, hi = est.fleet_kwh_interval
        clo, chi = est.fleet_co2e_kg_interval
        lines.append(f"fleet      {est.count:,} generations: {est.fleet_kwh:,.3g} kWh ({lo:,.3g} - {hi:,.3g}), "
                     f"{est.fleet_gpu_hours:,.3g} GPU-hours, {est.fleet_co2e_kg:,.3g} kg CO2e ({clo:,.3g} - {chi:,.3g})")
    lines.append("")
    lines.append("All figures are estimates from a fitted law (GPU energy; CPU and RAM not included), not measurements.")
    for n in est.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
