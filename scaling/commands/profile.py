"""`scaling profile`: FLOPs per component of one generation."""

from __future__ import annotations

from scaling.commands._common import add_setting_args, describe_setting, dump_json, fmt_flop, model_spec_from_args, setting_from_args, table


def add_parser(sub):
    p = sub.add_parser("profile", help="FLOPs per component of one generation (no GPU, no weights)",
                       description="Count FLOPs per component (text encoder, denoiser, decoder, vocoder) of one "
                                   "generation, split by op class. Closed form by default; --traced builds the real "
                                   "classes on the meta device (needs torch, diffusers, transformers).")
    add_setting_args(p, with_gpu=False)
    p.add_argument("--traced", action="store_true", help="trace the real classes on the meta device (torch)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args) -> int:
    from profilers.flops.profile import profile

    spec = model_spec_from_args(args)
    setting = setting_from_args(args, spec)
    method = "traced" if args.traced or spec.key.startswith("local:") else "closed-form"
    prof = profile(setting, method=method, spec=spec)
    if args.json:
        print(dump_json(prof.to_dict()))
        return 0
    s = setting
    what = describe_setting(s)
    print(f"model     {spec.id}")
    print(f"setting   {what}, {s.steps} steps, {'CFG ' + format(s.guidance_scale, 'g') if s.cfg else 'no CFG'}, "
          f"batch {s.batch_size}" + (f" x {s.outputs_per_prompt} outputs" if s.outputs_per_prompt > 1 else ""))
    print(f"method    {method} (one multiply-add = 2 FLOP; attention QK^T and AV counted)\n")
    rows = []
    for c in prof.components:
        ops = c.by_op_flop
        share = ops["attention"] / c.flop * 100 if c.flop else 0.0
        rows.append([c.component + (f" ({c.label})" if c.label else ""), c.role, c.description, c.calls,
                     fmt_flop(c.per_call_flop), fmt_flop(c.flop), f"{share:.0f}%"])
    print(table(rows, ["component", "role", "shape of one call", "calls", "FLOP/call", "FLOP/generation", "attn"]))
    print()
    by_role = prof.by_role()
    total = prof.total_flop
    rows = [[role, fmt_flop(v), f"{v / total * 100:.1f}%"] for role, v in by_role.items()]
    rows.append(["total", fmt_flop(total), "100%"])
    print(table(rows, ["role", "FLOP/generation", "share"]))
    return 0
