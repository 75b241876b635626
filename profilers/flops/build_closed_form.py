"""Build the closed-form FLOP and byte tables from traced counts (needs torch, diffusers, transformers).

    python -m profilers.flops.build_closed_form [-j JOBS] [MODEL_KEY ...]

For each model: trace every component call at a design of settings spanning the model's range
(prompt token counts included where the prompt sets the text length), solve for the polynomial
coefficients of each op class (FLOPs: ``coef``) and of the values moved per kind and byte class
(``traffic``, on the call's ``traffic_basis``) by least squares, check that the polynomials
reproduce every traced point (max relative residual < 1e-6; the traffic's against the call's
whole traffic), and write ``scaling/_registry/flops/<key>.json`` with the coefficients, the
design and the versions. A component whose basis, features and design points are unchanged
keeps its shipped FLOP coefficients (bit for bit). ``-j`` traces that many models in parallel
processes; all 26 tables take about 7.5 minutes on 2 cores with ``-j 2``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from profilers.flops.profile import BYTE_CLASSES, KINDS, OP_CLASSES
from scaling.errors import UnknownModelError
from scaling.registry import ModelSpec, list_models, prompt_token_rule, resolve_model
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
        out = [make_setting(spec, seconds=s, steps=1) for s in secs if s <= max_s + 1e-9]
        return out + _prompt_design(spec, out)
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
    if spec.family == "cogvideox":  # the sample size: CogVideoX-2b's positional table as built (bytes)
        out.append(make_setting(spec, steps=1))
    out += _pipeline_design(spec, out)
    return out + _prompt_design(spec, out)


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


def _pipeline_design(spec: ModelSpec, out: list[GenerationSetting]) -> list[GenerationSetting]:
    """Design points a model's ``pipeline.json`` spells out (``flop_design``: ``sizes`` as
    [height, width] and, for video, ``frames``; a missing list takes the default design's), for
    the families whose features need more than the default grid (UNet levels that round up,
    decoder chunks, resolution bins)."""
    d = spec.pipeline.get("flop_design")
    if not d:
        return []
    sizes = [tuple(x) for x in d.get("sizes", [])] or sorted({(s.height, s.width) for s in out})
    if spec.modality == "video":
        frames = d.get("frames") or sorted({s.frames for s in out})
        return [make_setting(spec, height=h, width=w, frames=f, steps=1) for h, w in sizes for f in frames]
    return [make_setting(spec, height=h, width=w, steps=1) for h, w in sizes]


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


def _prompt_design(spec: ModelSpec, out: list[GenerationSetting]) -> list[GenerationSetting]:
    """Design points that vary the prompt's tokens (``prompt_tokens``), for the models whose text
    length the prompt sets: the text tokens ``T`` (or ``L``) are a feature of the text encoder
    (``1, T, T^2``) and of the denoiser (``T``, ``L T``, ``T^2``; for the mel UNets ``L`` times each
    level). Two more token counts at the cheapest base settings (six for the mel UNets, whose
    ``L x level`` terms need six level configurations) identify them."""
    rule = prompt_token_rule(spec)
    if rule is None:
        return []
    d = rule.default
    others = sorted({max(1, d // 2), d * 2 if d * 2 <= rule.max_tokens else max(1, d // 4)} - {d})
    if len(others) < 2:
        others = sorted({1, 2, 3, max(1, d // 2)} - {d})[:2]
    k = 6 if spec.family == "audioldm2" else 2
    base = sorted(out, key=_cost)[:k]
    return [replace(s, prompt_tokens=t) for s in base for t in others]


def _cost(s: GenerationSetting) -> tuple:
    return ((s.height or 1) * (s.width or 1) * (s.frames or 1), s.audio_seconds or 0.0)


def _row(call: ComponentCall, basis=None) -> list[float]:
    row = []
    for mono in (call.basis if basis is None else basis):
        v = 1.0
        for name, power in mono:
            v *= float(call.features[name]) ** power
        row.append(v)
    return row


def _solve(X: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    """Least-squares coefficients (columns scaled for conditioning) and the worst relative miss."""
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    beta, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
    beta = beta / scale
    pred = X @ beta
    denom = np.maximum(np.abs(y), 1e-9 * max(1.0, np.abs(y).max()))
    rel = np.abs(pred - y) / np.maximum(denom, 1.0)
    return [float(b) for b in beta], float(rel.max()) if len(rel) else 0.0


def _kept_flops(prev: dict | None, entry: dict, design: list[dict], X: np.ndarray,
                traced: list[dict[str, float]]) -> tuple[dict, float] | None:
    """The shipped FLOP coefficients of a component, if its basis is unchanged, its design points
    are all still in the design and the coefficients reproduce every traced point."""
    if prev is None or prev["basis"] != entry["basis"] or not set(prev["features"]) <= set(entry["features"]):
        return None
    now = [{f: d[f] for f in prev["features"]} for d in design]
    if any(d not in now for d in prev["design"]):
        return None
    worst = 0.0
    for op in OP_CLASSES:
        y = np.array([t[op] for t in traced])
        worst = max(worst, float((np.abs(X @ np.array(prev["coef"][op]) - y) / np.maximum(np.abs(y), 1.0)).max()))
    if worst > MAX_REL_RESIDUAL:
        return None
    return prev["coef"], max(float(prev["max_rel_residual"]), worst)


def fit_model(spec: ModelSpec, settings: list[GenerationSetting] | None = None, verbose: bool = True,
              previous: dict | None = None) -> dict:
    """The closed-form table of ``spec``: FLOPs (``coef``) and values moved (``traffic``) per
    component call, each an exact polynomial fitted to traced points.

    ``previous``: the shipped table; a component whose basis, features and design are unchanged
    keeps its FLOP coefficients as shipped (a refit in another library version can differ in the
    last digits), only its traffic is fitted."""
    from profilers.flops.traced import parameter_count, trace_call

    settings = settings or design_settings(spec)
    points: dict[str, dict[tuple, tuple[ComponentCall, dict[str, float], dict]]] = {}
    for s in settings:
        for call in component_calls(spec, s):
            fkey = tuple(sorted(call.features.items()))
            pts = points.setdefault(call.key, {})
            if fkey not in pts:
                tr = trace_call(spec, call)
                pts[fkey] = (call, tr.flops.as_dict(), tr.traffic)
                if verbose:
                    print(f"  {spec.key} {call.key} {dict(fkey)} {tr.flops.total / 1e12:.3f} TFLOP", file=sys.stderr)
    old = (previous or {}).get("components", {})
    components = {}
    for key, pts in points.items():
        calls = [c for c, _, _ in pts.values()]
        basis = calls[0].basis
        if len(pts) < len(basis):
            raise RuntimeError(f"{spec.key} {key}: {len(pts)} design points for {len(basis)} coefficients")
        X = np.array([_row(c) for c in calls])
        byte_basis = calls[0].traffic_basis
        Xb = np.array([_row(c, byte_basis) for c in calls])
        if len(pts) < len(byte_basis):
            raise RuntimeError(f"{spec.key} {key}: {len(pts)} design points for {len(byte_basis)} traffic coefficients")
        design = [dict(k) for k in pts]
        entry = {"role": calls[0].role, "features": sorted(calls[0].features),
                 "basis": [list(map(list, m)) for m in basis]}
        if byte_basis != basis:
            entry["traffic_basis"] = [list(map(list, m)) for m in byte_basis]
        prev = old.get(key)
        kept = _kept_flops(prev, entry, design, X, [flops for _, flops, _ in pts.values()])
        if kept is not None:
            coef, resid_max = kept
        else:
            coef, resid_max = {}, 0.0
            for op in OP_CLASSES:
                coef[op], r = _solve(X, np.array([flops[op] for _, flops, _ in pts.values()]))
                resid_max = max(resid_max, r)
        # traffic: exact polynomials too; the miss is measured against the call's whole traffic
        # (bytes at bf16 widths), as the FLOP tests measure an op class against the call's FLOPs
        total = np.array([2.0 * sum(tr["activation"].values()) + 2.0 * sum(tr["weight"].values())
                          + sum(tr["fixed_byte"].values()) for _, _, tr in pts.values()])
        traffic, traffic_resid = {}, 0.0
        for kind in KINDS:
            traffic[kind] = {}
            width = 1.0 if kind == "fixed_byte" else 2.0
            for cls in BYTE_CLASSES:
                y = np.array([tr[kind][cls] for _, _, tr in pts.values()])
                traffic[kind][cls], _ = _solve(Xb, y)
                miss = np.abs(Xb @ np.array(traffic[kind][cls]) - y) * width / np.maximum(total, 1.0)
                traffic_resid = max(traffic_resid, float(miss.max()) if len(miss) else 0.0)
        entry.update({"coef": coef, "traffic": traffic, "design": design, "n_points": len(pts),
                      "max_rel_residual": resid_max, "traffic_max_rel_residual": traffic_resid})
        components[key] = entry
        for what, r in (("FLOP", resid_max), ("traffic", traffic_resid)):
            if r > MAX_REL_RESIDUAL:
                print(f"WARNING {spec.key} {key}: the {what} polynomial misses a traced point by {r:.2e} (relative)",
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
        "traffic_convention": TRAFFIC_CONVENTION,
        "params": {name: parameter_count(spec, name) for name in spec.components},
        "components": components,
    }


TRAFFIC_CONVENTION = (
    "values moved by one call for one sample (profilers/flops/counting.py): traffic[kind][class] = polynomial "
    "coefficients on the component's traffic_basis (its FLOP basis where absent); kind activation (floating activation values read + written), weight "
    "(parameter and buffer values read, once per op that reads them), fixed_byte (bytes of integer, boolean, "
    "float64 and complex tensors); classes attention, linear, conv, other, elementwise; fused SDPA moves Q, K, V, "
    "O; eager attention its score matrix; views move nothing")


def _build_one(key: str) -> tuple[str, dict, float]:
    spec = resolve_model(key)
    path = OUT_DIR / f"{spec.key}.json"
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    t0 = time.perf_counter()
    table = fit_model(spec, previous=previous, verbose=False)
    path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return spec.key, table, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m profilers.flops.build_closed_form", description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="model keys (default: every registered architecture)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="models traced in parallel (processes; default 1)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    keys = args.models or [s.key for s in list_models()]
    for key in keys:
        if key.startswith("local:"):
            print(f"error: {key!r} is a local folder's key, not a registered model: its tables are built and cached "
                  "on first use by `scaling predict --config DIR` (see README, 'Any pipeline folder')", file=sys.stderr)
            return 2
        try:
            resolve_model(key)
        except UnknownModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    def report(key: str, table: dict, seconds: float) -> None:
        comps = table["components"].values()
        worst = max(c["max_rel_residual"] for c in comps)
        worst_t = max(c["traffic_max_rel_residual"] for c in comps)
        print(f"{key}: wrote {len(table['components'])} components in {seconds:.0f} s, worst residual FLOP "
              f"{worst:.1e}, traffic {worst_t:.1e}", flush=True)

    if args.jobs <= 1:
        for key in keys:
            report(*_build_one(key))
        return 0
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for key, table, seconds in pool.map(_build_one, keys):
            report(key, table, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
