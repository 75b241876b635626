"""`scaling profile`: FLOPs per component of one generation."""

from __future__ import annotations

from scaling.app.commands._common import add_setting_args, describe_setting, dump_json, fmt_flop, model_spec_from_args, setting_from_args
from scaling.app.commands._out import add_wide_arg, plural, render_table, working


def add_parser(sub):
    p = sub.add_parser("profile", help="FLOPs per component of one generation (no GPU, no weights)",
                       description="Count FLOPs per component (text encoder, denoiser, decoder, vocoder) of one "
                                   "generation, split by op class. Closed form by default; --traced builds the real "
                                   "classes on the meta device (needs torch, diffusers, transformers).")
    add_setting_args(p, with_gpu=True)
    p.add_argument("--traced", action="store_true", help="trace the real classes on the meta device (torch)")
    p.add_argument("--attention", metavar="VARIANT", action="append",
                   help="attention variant: full | litefocus:r=0.1[,blocks=down.1+up.2] | tome:ratio=0.5[,merge=attn|all]"
                        " | window:size=N; prefix COMPONENT= for another component than the denoiser; repeatable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from profilers.flops.profile import profile

    spec = model_spec_from_args(args)
    setting = setting_from_args(args, spec)
    method = "traced" if args.traced or spec.key.startswith("local:") else "closed-form"
    if method == "traced":
        from scaling.extras import require

        require("torch", "diffusers", "transformers", what="tracing (--traced, --config DIR)")
    attention = ";".join(args.attention) if args.attention else None
    with working(f"tracing {spec.id} on the meta device" if method == "traced" else "counting FLOPs"):
        prof = profile(setting, method=method, spec=spec, attention=attention)
    from profilers.flops.memory import fmt_byte, is_rough, memory_profile

    mem = memory_profile(setting, spec=spec)
    if args.json:
        print(dump_json(dict(prof.to_dict(), memory=mem.to_dict())))
        return 0
    s = setting
    what = describe_setting(s)
    print(f"model     {spec.id}")
    wide = getattr(args, "wide", False)
    print(f"setting   {what}, {plural(s.steps, 'step')}, {'CFG ' + format(s.guidance_scale, 'g') if s.cfg else 'no CFG'}, "
          f"batch {s.batch_size}" + (f" x {s.outputs_per_prompt} outputs" if s.outputs_per_prompt > 1 else "")
          + f" ({plural(s.n_outputs, 'output')} per call)")
    print(f"method    {method} (one multiply-add = 2 FLOP; attention QK^T and AV counted)")
    if prof.attention:
        full = profile(setting, method=method, spec=spec) if method == "closed-form" else None
        for comp, v in prof.attention.items():
            print(f"attention {comp}: {v}" + (f" (FLOP per call {prof.total_flop / full.total_flop - 1:+.1%} vs full "
                                              "attention)" if full else ""))
    print()
    cm = {m.component: m for m in mem.components}
    rows = []
    shapes = []
    for c in prof.components:
        ops = c.by_op_flop
        share = ops["attention"] / c.flop * 100 if c.flop else 0.0
        m = cm.get(c.component)
        name = c.component + (f" ({c.label})" if c.label else "")
        row = [name] + ([c.role, c.description] if wide else []) + [
            c.calls, fmt_flop(c.per_call_flop), fmt_flop(c.flop)] + (
            [fmt_flop(c.flop / s.n_outputs)] if wide and s.n_outputs > 1 else []) + [
            f"{share:.0f}%", fmt_byte(m.weights_byte if m else None),
            fmt_byte(m.activation_byte if m else None, m is not None and is_rough(m))]
        if mem.gpu:
            fits = mem.component_fits(m) if m else None
            row.append("-" if fits is None else "yes" if fits else "NO")
        rows.append(row)
        shapes.append(f"{name}: {c.description}")
    header = ["component"] + (["role", "shape of one pass"] if wide else []) + [
        "passes", "FLOP/pass", "FLOP per call"] + (["FLOP per output"] if wide and s.n_outputs > 1 else []) + [
        "attn", f"weights {s.precision}", "activ. (est.)"] + (["fits"] if mem.gpu else [])
    print(render_table(rows, header, wide=wide))
    if not wide:
        print("\nshape of one pass (`--wide`: in the table, with the roles):")
        for line in shapes:
            print(f"  {line}")
    print("\npass = one forward of a component; call = one pipeline call "
          f"({plural(s.n_outputs, 'output')}); attn = attention's share of the FLOPs")
    print(f"\nmemory    weights = params x bytes at {s.precision} (+ quantisation scales);\n"
          "          activations = ESTIMATE: peak live tensors of the largest pass (traced once on the meta device,\n"
          "          fused attention)")
    print(f"          pipeline weights {fmt_byte(mem.weights_byte)}; peak all resident {fmt_byte(mem.resident_peak_byte)}"
          f", with model CPU offload {fmt_byte(mem.offload_peak_byte)}")
    if mem.gpu:
        verdict = mem.pipeline_fit()
        print(f"          on {mem.gpu} ({fmt_byte(mem.gpu_memory_byte)}, {fmt_byte(mem.overhead_byte)} kept for the CUDA "
              f"context and allocator):\n          {'fits ' + verdict if verdict != 'does not fit' else 'does NOT fit'}")
    if any(is_rough(m) for m in mem.components):
        print("          ~ = the activation fit misses one of its traced points by more than 5% (chunked decoding)")
    for note in mem.notes:
        print(f"          note: {note}")
    print()
    by_role = prof.by_role()
    total = prof.total_flop
    rows = [[role, fmt_flop(v), f"{v / total * 100:.1f}%"] for role, v in by_role.items() if v]
    rows.append(["total", fmt_flop(total), "100%"])
    print(render_table(rows, ["role", "FLOP per call", "share"], totals=1))
    return 0
