"""Build the closed-form FLOP tables from traced counts (needs torch, diffusers, transformers).

    python -m profilers.flops.build_closed_form [MODEL_KEY ...]

For each model: trace every component call at a design of settings spanning the model's range,
solve for the polynomial coefficients of each op class by least squares, check that the
polynomial reproduces every traced point (max relative residual < 1e-6), and write
``scaling/_registry/flops/<key>.json`` with the coefficients, the design and the versions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from profilers.flops.profile import OP_CLASSES
from scaling.registry import ModelSpec, list_models, resolve_model
from scaling.settings import GenerationSetting, make_setting
from scaling.shapes import ComponentCall, component_calls

OUT_DIR = Path(__file__).resolve().parents[2] / "scaling" / "_registry" / "flops"
MAX_REL_RESIDUAL = 1e-6


def design_settings(spec: ModelSpec) -> list[GenerationSetting]:
    """Settings that span the model's range (resolutions, frames, seconds)."""
    rules = spec.rules
    out: list[GenerationSetting] = []
    if spec.family in ("audioldm", "audioldm2", "musicldm"):
        # Mel-latent UNets take any latent length T and downsample it with ceil(T/2) three times:
        # the polynomial is in (T, T2, T4, T8) (scaling/shapes/_audio.py), so the design needs T of
        # many residues mod 8 (T = 13, 25, 55, 64, 91, 128, 169, 250, 256, 375, 512, 765, 1024, 1500),
        # not only the powers of two of the default audio design.
        max_s = rules.get("max_audio_s") or 60.0
        secs = (0.52, 1.0, 2.2, 2.56, 3.64, 5.12, 6.76, 10.0, 10.24, 15.0, 20.48, 30.6, 40.96, 60.0)
        return [make_setting(spec, seconds=s, steps=1) for s in secs if s <= max_s + 1e-9]
    if spec.modality in ("image", "video"):
        m = rules.get("res_multiple") or 8
        max_side = rules.get("max_side") or 2048
        sides = [(256, 256), (512, 512), (512, 768), (768, 768), (1024, 1024), (768, 1344)]
        if spec.modality == "video":
            sides = [(256, 256), (320, 576), (480, 832), (720, 1280)]
        res = sorted({(max(m, round(h / m) * m), max(m, round(w / m) * m)) for h, w in sides
                      if h <= max_side and w <= max_side})
        if spec.modality == "image":
            out = [make_setting(spec, height=h, width=w, steps=1) for h, w in res]
        else:
            step = rules.get("frame_step") or 1
            max_frames = rules.get("max_frames") or 121
            ks = sorted({1, 3, 5, max(1, (max_frames - 1) // step // 2), (max_frames - 1) // step})
            frames = sorted({1 + step * k for k in ks if 1 + step * k <= max_frames})
            if step == 1:
                frames = sorted({8, 16, 24, max_frames})
            out = [make_setting(spec, height=h, width=w, frames=f, steps=1) for h, w in res for f in frames]
    else:
        max_s = rules.get("max_audio_s") or 60.0
        secs = [s for s in (2.56, 5.12, 7.68, 10.24, 20.48, 40.96) if s <= max_s + 1e-9] or [max_s]
        out = [make_setting(spec, seconds=s, steps=1) for s in secs]
    out += _image_family_design(spec)
    if spec.family in ("cogvideox", "hunyuan", "animatediff"):  # video families (scaling/shapes/_video.py)
        out = _video_family_design(spec, out)
    return out


def _video_family_design(spec: ModelSpec, out: list[GenerationSetting]) -> list[GenerationSetting]:
    """Designs of the video families whose features count decoder chunks or UNet levels.

    - cogvideox: the VAE decodes 2 latent frames at a time (features c1, c2, c3 = chunks of
      1, 2, 3 frames): add 1 frame (the only setting with a 1-frame chunk).
    - hunyuan: the VAE decodes overlapping temporal tiles of up to 5 latent frames (features
      t1..t5): latent frames 1..7 give every tile length alone and in combination.
    - animatediff: the UNet's levels round up (features P0..P3 = latent pixels per level):
      resolutions that are and are not multiples of 64 so that every level is identified.
    """
    if spec.family == "cogvideox":
        res = sorted({(s.height, s.width) for s in out})
        return out + [make_setting(spec, height=h, width=w, frames=1, steps=1) for h, w in res]
    if spec.family == "hunyuan":
        res = sorted({(s.height, s.width) for s in out})
        frames = (1, 5, 9, 13, 17, 21, 25, 65, 129)
        return [make_setting(spec, height=h, width=w, frames=f, steps=1) for h, w in res for f in frames]
    if spec.family == "animatediff":
        res = [(136, 248), (200, 344), (256, 256), (320, 576), (360, 640), (424, 760), (480, 832), (512, 512),
               (512, 768), (600, 1000), (768, 768), (1024, 1024)]
        return [make_setting(spec, height=h, width=w, frames=f, steps=1) for h, w in res for f in (8, 16, 24, 32)]
    return out


def _image_family_design(spec: ModelSpec) -> list[GenerationSetting]:
    """Extra design points of the image families (sd, sdxl, pixart); see scaling/shapes/_image.py."""
    extra: list[tuple[int, int]] = []
    if spec.family in ("sd", "sdxl"):
        # UNet levels round up (ceil(side/2) per downsampling): latent sides that are not
        # multiples of 8 separate the per-level pixel features P, P1, P2, P3
        extra = [(264, 264), (392, 584), (456, 456), (520, 776), (648, 648), (800, 1200), (904, 1352),
                 (1000, 1000), (1176, 712)]
    elif spec.family == "pixart":
        # resolution binning: request the bins themselves so that the token counts differ
        extra = [(512, 2048), (576, 1728), (640, 1536), (704, 1408), (704, 1472), (832, 1216), (896, 1152),
                 (1088, 896), (1408, 704), (2048, 512)]
    m = spec.rules.get("res_multiple") or 8
    max_side = spec.rules.get("max_side") or 2048
    return [make_setting(spec, height=h, width=w, steps=1) for h, w in extra
            if h % m == 0 and w % m == 0 and h <= max_side and w <= max_side]


def _row(call: ComponentCall) -> list[float]:
    row = []
    for mono in call.basis:
        v = 1.0
        for name, power in mono:
            v *= float(call.features[name]) ** power
        row.append(v)
    return row


def fit_model(spec: ModelSpec, settings: list[GenerationSetting] | None = None, verbose: bool = True) -> dict:
    from profilers.flops.traced import count_call, parameter_count

    settings = settings or design_settings(spec)
    points: dict[str, dict[tuple, tuple[ComponentCall, dict[str, float]]]] = {}
    for s in settings:
        for call in component_calls(spec, s):
            fkey = tuple(sorted(call.features.items()))
            pts = points.setdefault(call.key, {})
            if fkey not in pts:
                pts[fkey] = (call, count_call(spec, call).as_dict())
                if verbose:
                    print(f"  {spec.key} {call.key} {dict(fkey)} {sum(pts[fkey][1].values()) / 1e12:.3f} TFLOP",
                          file=sys.stderr)
    components = {}
    for key, pts in points.items():
        calls = [c for c, _ in pts.values()]
        basis = calls[0].basis
        X = np.array([_row(c) for c in calls])
        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        coef, resid_max = {}, 0.0
        for op in OP_CLASSES:
            y = np.array([flops[op] for _, flops in pts.values()])
            beta, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
            beta = beta / scale
            pred = X @ beta
            denom = np.maximum(np.abs(y), 1e-9 * max(1.0, np.abs(y).max()))
            rel = np.abs(pred - y) / np.maximum(denom, 1.0)
            resid_max = max(resid_max, float(rel.max()) if len(rel) else 0.0)
            coef[op] = [float(b) for b in beta]
        if len(pts) < len(basis):
            raise RuntimeError(f"{spec.key} {key}: {len(pts)} design points for {len(basis)} coefficients")
        components[key] = {
            "role": calls[0].role,
            "features": sorted(calls[0].features),
            "basis": [list(map(list, m)) for m in basis],
            "coef": coef,
            "design": [dict(k) for k in pts],
            "n_points": len(pts),
            "max_rel_residual": resid_max,
        }
        if resid_max > MAX_REL_RESIDUAL:
            print(f"WARNING {spec.key} {key}: polynomial misses a traced point by {resid_max:.2e} (relative)",
                  file=sys.stderr)
    import diffusers
    import torch
    import transformers

    return {
        "model": spec.key,
        "id": spec.id,
        "generated_by": "python -m profilers.flops.build_closed_form",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "convention": "FLOP of one call for one sample; one multiply-add = 2 FLOP; attention QK^T and AV counted",
        "params": {name: parameter_count(spec, name) for name in spec.components},
        "components": components,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    keys = argv or [s.key for s in list_models()]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for key in keys:
        spec = resolve_model(key)
        print(f"{spec.key}: tracing", file=sys.stderr)
        table = fit_model(spec)
        (OUT_DIR / f"{spec.key}.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        worst = max(c["max_rel_residual"] for c in table["components"].values())
        print(f"{spec.key}: wrote {len(table['components'])} components, worst residual {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
