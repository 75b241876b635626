"""`scaling profile`: FLOPs, bytes moved and arithmetic intensity per component of one generation."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands._common import add_setting_args, describe_setting, dump_json, fmt_flop, model_spec_from_args, setting_from_args
from scaling.app.commands._out import add_wide_arg, plural, render_table, working


def add_parser(sub):
    p = sub.add_parser("profile", help="FLOPs per component of one generation (no GPU, no weights)",
                       description="Count FLOPs per component (text encoder, denoiser, decoder, vocoder) of one "
                                   "generation, split by op class. Closed form by default; --traced builds the real "
                                   "classes on the meta device (needs torch, diffusers, transformers).")
    add_setting_args(p, with_gpu=True)
    p.add_argument("--traced", action="store_true", help="trace the real classes on the meta device (torch)")
    p.add_argument("--attention", metavar="VARIANT", action="append", type=T.nonempty("attention"),
                   help="attention variant: full | litefocus:r=0.1[,blocks=down.1+up.2] | tome:ratio=0.5[,merge=attn|all]"
                        " | window:size=N, each with ,kernel=sdpa (fused, default) or ,kernel=eager (score matrix "
                        "materialised); prefix COMPONENT= for another component than the denoiser; repeatable")
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
    if s.prompt_tokens is not None:
        from scaling.registry import prompt_token_rule

        rule = prompt_token_rule(spec)
        print(f"text      {s.prompt_tokens} prompt tokens ({rule.note}"
              + ("; the model's default" if s.prompt_tokens == rule.default else "") + "; --prompt-tokens N)")
    print(f"method    {method} (one multiply-add = 2 FLOP; attention QK^T and AV counted)")
    if prof.attention:
        full = profile(setting, method=method, spec=spec) if method == "closed-form" else None
        for comp, v in prof.attention.items():
            print(f"attention {comp}: {v}" + (f" (FLOP per call {prof.total_flop / full.total_flop - 1:+.1%} vs full "
                                              "attention)" if full else ""))
    print()
    cm = {m.component: m for m in mem.components}
    from profilers.flops.profile import traffic_is_rough

    def rough(c) -> bool:
        return method == "closed-form" and traffic_is_rough(spec, c.component + (f":{c.label}" if c.label else ""))

    rows = []
    shapes = []
    for c in prof.components:
        ops = c.by_op_flop
        share = ops["attention"] / c.flop * 100 if c.flop else 0.0
        m = cm.get(c.component)
        name = c.component + (f" ({c.label})" if c.label else "")
        row = [name] + ([c.role, c.description] if wide else []) + [
            c.calls, fmt_flop(c.per_call_flop), fmt_flop(c.flop)] + (
            [fmt_flop(c.flop / s.n_outputs)] if wide and s.n_outputs > 1 else []) + (
            [("~" if rough(c) else "") + fmt_traffic(c.byte), _intensity(c.flop_per_byte)]
            if prof.has_bytes and wide else []) + [
            f"{share:.0f}%", fmt_byte(m.weights_byte if m else None),
            fmt_byte(m.activation_byte if m else None, m is not None and is_rough(m))]
        if mem.gpu:
            fits = mem.component_fits(m) if m else None
            row.append("-" if fits is None else "yes" if fits else "NO")
        rows.append(row)
        shapes.append(f"{name}: {c.description}")
    header = ["component"] + (["role", "shape of one pass"] if wide else []) + [
        "passes", "FLOP/pass", "FLOP per call"] + (["FLOP per output"] if wide and s.n_outputs > 1 else []) + (
        ["bytes per call", "FLOP/B"] if prof.has_bytes and wide else []) + [
        "attn", f"weights {s.precision}", "activ. (est.)"] + (["fits"] if mem.gpu else [])
    print(render_table(rows, header, wide=wide))
    ridge = _ridge(mem.gpu, s.precision) if mem.gpu and prof.has_bytes else None
    if prof.has_bytes and not wide:  # the byte columns in a table of their own (all in one with --wide)
        brows = [[c.component + (f" ({c.label})" if c.label else ""), c.calls,
                  ("~" if rough(c) else "") + fmt_traffic(c.per_call_byte),
                  ("~" if rough(c) else "") + fmt_traffic(c.byte), fmt_traffic(c.weight_byte), _intensity(c.flop_per_byte)]
                 + ([_bound(c.flop_per_byte, ridge)] if ridge else []) for c in prof.components]
        print()
        print(render_table(brows, ["component", "passes", "bytes/pass", "bytes per call", "weights read", "FLOP/B"]
                           + ([f"bound on {mem.gpu}"] if ridge else [])))
    if not wide:
        print("\nshape of one pass (`--wide`: in the table, with the roles):")
        for line in shapes:
            print(f"  {line}")
    print("\npass = one forward of a component; call = one pipeline call "
          f"({plural(s.n_outputs, 'output')}); attn = attention's share of the FLOPs")
    if prof.has_bytes:
        print(f"bytes     moved by the ops at {s.precision} (eager PyTorch: every element-wise op reads and writes its\n"
              "          tensors; fused SDPA moves Q, K, V, O; eager attention also its score matrix; weights read by each\n"
              "          op that uses them); FLOP/B = arithmetic intensity (FLOP per byte moved)")
        if ridge:
            print(f"bound     the roofline's verdict from the hardware figures: compute-bound above the ridge point of "
                  f"{mem.gpu}\n          at {s.precision}, peak / bandwidth = {ridge:,.0f} FLOP/B (the fitted law's "
                  "efficiencies move it; `scaling predict`\n          applies the law)")
        if any(rough(c) for c in prof.components):
            print("          ~ = approximate closed-form bytes (the decoder splits large convolutions by a memory "
                  "threshold;\n          --traced counts them exactly)")
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
    by_role_byte = prof.by_role_byte() if prof.has_bytes else {}
    rows = [[role, fmt_flop(v), f"{v / total * 100:.1f}%"]
            + ([fmt_traffic(by_role_byte[role]), _intensity(v / by_role_byte[role] if by_role_byte[role] else None)]
               if by_role_byte else []) for role, v in by_role.items() if v]
    rows.append(["total", fmt_flop(total), "100%"]
                + ([fmt_traffic(prof.total_byte), _intensity(prof.flop_per_byte)] if by_role_byte else []))
    print(render_table(rows, ["role", "FLOP per call", "share"] + (["bytes per call", "FLOP/B"] if by_role_byte else []),
                       totals=1))
    return 0


def _ridge(gpu_key: str, precision: str) -> float:
    """The ridge point of a GPU at a precision: dense peak FLOP/s over memory bandwidth (FLOP per byte)."""
    from scaling.hardware import resolve_gpu
    from scaling.precision import normalize_precision, precision_plan

    gpu = resolve_gpu(gpu_key)
    return precision_plan(normalize_precision(precision), gpu).peak_flop_per_s / gpu.memory_bandwidth_byte_per_s


def _bound(intensity: float | None, ridge: float) -> str:
    if intensity is None:
        return "-"
    return "compute" if intensity >= ridge else "memory"


def fmt_traffic(x: float) -> str:
    """Bytes moved, in decimal units (as memory bandwidth is quoted): ``1.39 TB``."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def _intensity(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}" if x >= 10 else f"{x:.2g}"
