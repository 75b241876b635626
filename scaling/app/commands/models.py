"""`scaling models`: the model registry."""

from __future__ import annotations

from scaling.app.commands._common import dump_json, fmt_params
from scaling.app.commands._out import add_wide_arg, plural, render_table


def add_parser(sub):
    p = sub.add_parser("models", help="list the registered models", description="List the model registry: id, "
                       "modality, components with parameter counts, defaults.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--variants", action="store_true", help="also list checkpoints that share a registered architecture")
    add_wide_arg(p)
    return p


def _defaults(spec) -> str:
    d = spec.defaults
    parts = []
    if d.get("height"):
        parts.append(f"{d['width']}x{d['height']}")
    if spec.modality == "video" and d.get("frames"):
        parts.append(f"{d['frames']} frames")
    if spec.modality == "audio" and d.get("audio_seconds"):
        parts.append(f"{d['audio_seconds']:g} s")
    parts.append(plural(d["steps"], "step"))
    if spec.guidance_type == "none":
        parts.append("no guidance")
    else:
        parts.append(spec.guidance_type + (f" {d['guidance_scale']:g}" if d.get("guidance_scale") is not None else ""))
    return ", ".join(parts)


def run(args) -> int:
    from profilers.flops.profile import has_table, parameter_counts
    from scaling.registry import list_models

    specs = list_models(include_variants=args.variants)
    wide = getattr(args, "wide", False)
    rows, out = [], []
    for spec in specs:
        params = parameter_counts(spec) if has_table(spec) else {}
        if wide:
            comps = ", ".join(f"{name} {fmt_params(params.get(name))}" for name in spec.components)
            rows.append([spec.id, spec.modality, ", ".join(spec.aliases), comps, _defaults(spec)])
        else:
            denoiser = sum(params.get(n) or 0 for n, c in spec.components.items() if c.role == "denoiser")
            total = sum(v for v in params.values() if v) if params else None
            rows.append([spec.aliases[0] if spec.aliases else spec.key, spec.modality,
                         fmt_params(denoiser or None), fmt_params(total), _defaults(spec)])
        out.append({"key": spec.key, "id": spec.id, "aliases": list(spec.aliases), "modality": spec.modality,
                    "pipeline": spec.pipeline_class, "guidance": spec.guidance_type,
                    "components": {n: {"role": c.role, "class": c.class_name, "params": params.get(n)}
                                   for n, c in spec.components.items()},
                    "defaults": dict(spec.defaults), "provenance": spec.provenance})
    if args.json:
        print(dump_json(out))
    elif wide:
        print(render_table(rows, ["id", "modality", "aliases", "components (parameters)", "defaults"], wide=True))
    else:
        print(render_table(rows, ["model", "modality", "denoiser", "all weights", "defaults"]))
        print("\nmodel: the name to pass to --model (`--wide`: the Hugging Face id, every alias and every component).")
    return 0
