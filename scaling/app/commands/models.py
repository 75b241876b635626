"""`scaling models`: the model registry."""

from __future__ import annotations

from scaling.app.commands._common import dump_json, fmt_params, table


def add_parser(sub):
    p = sub.add_parser("models", help="list the registered models", description="List the model registry: id, "
                       "modality, components with parameter counts, defaults.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--variants", action="store_true", help="also list checkpoints that share a registered architecture")
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
    parts.append(f"{d['steps']} steps")
    parts.append(spec.guidance_type + (f" {d['guidance_scale']:g}" if d.get("guidance_scale") is not None else ""))
    return ", ".join(parts)


def run(args) -> int:
    from profilers.flops.profile import has_table, parameter_counts
    from scaling.registry import list_models

    specs = list_models(include_variants=args.variants)
    rows, out = [], []
    for spec in specs:
        params = parameter_counts(spec) if has_table(spec) else {}
        comps = ", ".join(f"{name} {fmt_params(params.get(name))}" for name in spec.components)
        rows.append([spec.id, spec.modality, ", ".join(spec.aliases), comps, _defaults(spec)])
        out.append({"key": spec.key, "id": spec.id, "aliases": list(spec.aliases), "modality": spec.modality,
                    "pipeline": spec.pipeline_class, "guidance": spec.guidance_type,
                    "components": {n: {"role": c.role, "class": c.class_name, "params": params.get(n)}
                                   for n, c in spec.components.items()},
                    "defaults": dict(spec.defaults), "provenance": spec.provenance})
    if args.json:
        print(dump_json(out))
    else:
        print(table(rows, ["id", "modality", "aliases", "components (parameters)", "defaults"]))
    return 0
