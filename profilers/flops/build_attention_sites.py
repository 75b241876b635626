"""Build the attention-site tables (needs torch, diffusers, transformers); trace variants.

    python -m profilers.flops.build_attention_sites [MODEL_KEY ...]

An *attention site* is one attention module of a denoiser (``down_blocks.1.attentions.0.
transformer_blocks.0.attn1``). For each site this traces the component on the meta device at
a few settings with :class:`profilers.flops.counting.OpCounter`, counting per module (each site
and each transformer block is a scope), and records

- where it is: module path, block name (``down.1``, ``up.2``, ``mid``, ``blocks.7``), the
  transformer block that holds it;
- what it attends: ``self`` (queries and keys are the latent tokens; found at run time: the
  call passes no ``encoder_hidden_states``, so AudioLDM's ``attn2`` layers count as self) or
  ``cross``;
- its tokens: the level feature ``x`` of the component's closed-form variables the token count
  is proportional to (``L = tokens_per_feature * x``; ``T2`` for AudioLDM 2's second level,
  ``P1`` for SD's, ``L`` for a DiT) and its grid (``(time, freq)`` of a mel latent, with the
  number of frequency bins);
- heads x head_dim;
- its FLOP polynomial per op class in ``x`` (``1, x, x^2``; solved exactly from the traced
  points and checked on every point), and the same for the whole transformer block (what token
  merging shrinks when it merges for the MLP too);
- its traffic polynomials (``traffic[kind][class]``: values moved, as in the closed-form tables),
  from which :mod:`profilers.flops.attention_variants` derives what a variant does to the bytes.

The tables go to ``scaling/_registry/attention_sites/<key>.json``;
:mod:`profilers.flops.attention_variants` applies the variants from them without torch.

:func:`trace_variant` is the traced cross-check: it traces one call with the chosen sites
patched to run the variant for real on meta tensors (LiteFocus's same-frequency einsum and the
random cross-frequency keys as in the authors' code, windows by gathered keys, token merging by
a bipartite similarity matmul and a reduced token set), so that FlopCounterMode counts what the
variant computes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from profilers.flops import BYTE_CLASSES, KINDS, traced
from profilers.flops.counting import count_run
from profilers.flops.attention_variants import AttentionVariant, parse_variant, resolve_sites, site_table, tome_tokens
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import make_setting
from scaling.shapes import ComponentCall, component_calls

OUT_DIR = Path(__file__).resolve().parents[2] / "scaling" / "_registry" / "attention_sites"
DEFAULT_MODELS = ("audioldm2", "audioldm-s-full-v2", "audioldm-l-full", "musicldm", "sd1.5", "sd2.1", "sdxl",
                  "wan2.1-t2v-1.3b", "wan2.1-t2v-14b")
MAX_REL_RESIDUAL = 1e-6
_LEAF_ATTENTION = re.compile(r"Attention$")
_BLOCK = re.compile(r"TransformerBlock$")


# -- design ----------------------------------------------------------------------------------

def design_calls(spec: ModelSpec, component: str) -> list[ComponentCall]:
    """A few calls of ``component`` whose level features each take >= 4 distinct values."""
    if spec.modality == "audio":
        settings = [make_setting(spec, seconds=s, steps=1) for s in (1.0, 2.2, 3.64, 6.76, 10.24)]
    elif spec.modality == "image":
        m = spec.rules.get("res_multiple") or 8
        sides = [(256, 256), (264, 392), (384, 384), (512, 512), (520, 776)]
        settings = [make_setting(spec, height=h, width=w, steps=1) for h, w in sides if h % m == 0 and w % m == 0]
    else:
        settings = [make_setting(spec, height=h, width=w, frames=f, steps=1)
                    for h, w, f in ((256, 256, 1), (256, 256, 5), (320, 576, 9), (480, 832, 5), (480, 832, 17))]
    out, seen = [], set()
    for s in settings:
        for c in component_calls(spec, s):
            key = tuple(sorted(c.features.items()))
            if c.component == component and key not in seen:
                seen.add(key)
                out.append(c)
    return out


def denoiser_components(spec: ModelSpec) -> list[str]:
    return [n for n, c in spec.components.items() if c.role == "denoiser"]


# -- one traced call with per-module attribution --------------------------------------------

def _block_name(path: str) -> str:
    parts = path.split(".")
    if parts[0] in ("down_blocks", "up_blocks") and len(parts) > 1:
        return f"{parts[0][:-7]}.{parts[1]}"
    if parts[0] == "mid_block":
        return "mid"
    for i, p in enumerate(parts[:-1]):
        if p in ("blocks", "transformer_blocks", "single_transformer_blocks"):
            return f"{'single.' if p == 'single_transformer_blocks' else 'blocks.'}{parts[i + 1]}"
    return parts[0]


def _leaf_attention(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in module.named_modules()
            if n and _LEAF_ATTENTION.search(type(m).__name__) and hasattr(m, "heads")]


def _runner(spec: ModelSpec, call: ComponentCall):
    module = traced._module_for(spec, call)
    build = traced.BUILDERS[type(module).__name__]
    with torch.device("meta"):
        fn, kwargs = build(spec, call, module)
    inner = module.unet if hasattr(module, "unet") and type(module).__name__ == "AudioUNet" else module
    return module, inner, fn, kwargs


def _ehs(args, kwargs):
    if "encoder_hidden_states" in kwargs:
        return kwargs["encoder_hidden_states"]
    return args[1] if len(args) > 1 else None


def trace_sites(spec: ModelSpec, call: ComponentCall) -> dict[str, Any]:
    """Per-site and per-transformer-block FLOPs of ONE call for ONE sample, and the token grids."""
    module, inner, fn, kwargs = _runner(spec, call)
    seen: dict[str, dict] = {}
    grids: dict[str, tuple[int, ...]] = {}
    handles = []

    def attn_hook(name):
        def hook(mod, args, kw):
            hs = args[0] if args else kw["hidden_states"]
            if name not in seen:
                tokens = int(hs.shape[1]) if hs.dim() == 3 else int(math.prod(hs.shape[2:]))
                seen[name] = {"self": _ehs(args, kw) is None, "tokens": tokens, "dim": int(hs.shape[-1])}
        return hook

    def grid_hook(name):
        def hook(mod, args, kw):
            hs = args[0] if args else kw["hidden_states"]
            if hs.dim() == 4 and name not in grids:
                grids[name] = tuple(int(v) for v in hs.shape[2:])
        return hook

    for name, m in _leaf_attention(inner):
        handles.append(m.register_forward_pre_hook(attn_hook(name), with_kwargs=True))
    for name, m in inner.named_modules():
        if type(m).__name__ == "Transformer2DModel":
            handles.append(m.register_forward_pre_hook(grid_hook(name), with_kwargs=True))
    root_shape: dict[str, tuple] = {}

    def root_hook(mod, args, kw):
        x = args[0] if args else kw.get("hidden_states", kw.get("sample"))
        root_shape.setdefault("x", tuple(x.shape))

    handles.append(inner.register_forward_pre_hook(root_hook, with_kwargs=True))
    scopes = {n: m for n, m in _leaf_attention(inner)}
    scopes.update({n: m for n, m in inner.named_modules() if n and _BLOCK.search(type(m).__name__)})
    attn = [module.get_submodule(n) for n in traced._top_attention_modules(module)]
    try:
        counter = count_run(fn, kwargs, module, attn, scopes)
    finally:
        for h in handles:
            h.remove()

    def ops(path: str) -> dict[str, float]:
        return counter.scopes[path].flop()

    def traffic(path: str) -> dict[str, dict[str, float]]:
        return counter.scopes[path].traffic()

    sites, blocks = {}, {}
    for name, m in _leaf_attention(inner):
        if name not in seen:
            continue  # not run by this pipeline
        parents = [n for n, _ in inner.named_modules() if n and name.startswith(n + ".")]
        tblock = next((p for p in reversed(parents) if _BLOCK.search(type(inner.get_submodule(p)).__name__)), None)
        t2d = next((p for p in reversed(parents) if p in grids), None)
        info = seen[name]
        grid = grids.get(t2d) if t2d else None
        if grid is None and len(root_shape.get("x", ())) == 5:  # video DiT: (B, C, F, H, W) / patch
            p = inner.config.get("patch_size") or (1, 2, 2)
            grid = tuple(s // q for s, q in zip(root_shape["x"][2:], p))
        heads = int(m.heads)
        inner_dim = int(getattr(m, "inner_dim", 0) or m.to_q.out_features)
        sites[name] = {"kind": "self" if info["self"] else "cross", "tokens": info["tokens"], "dim": info["dim"],
                       "heads": heads, "head_dim": inner_dim // heads, "grid": grid,
                       "transformer_block": tblock, "ops": ops(name), "traffic": traffic(name)}
        if tblock and tblock not in blocks:
            blocks[tblock] = {"ops": ops(tblock), "traffic": traffic(tblock), "dim": info["dim"],
                              "tokens": info["tokens"]}
    return {"sites": sites, "blocks": blocks}


# -- fit ---------------------------------------------------------------------------------------

def _level_feature(call_points: list[tuple[ComponentCall, int]]) -> tuple[str, int]:
    """The feature the token count is proportional to (and the factor)."""
    feats = call_points[0][0].features
    for name in feats:
        ratios = {tok / c.features[name] for c, tok in call_points if c.features[name]}
        if len(ratios) == 1:
            r = ratios.pop()
            if abs(r - round(r)) < 1e-9:
                return name, int(round(r))
    raise RuntimeError(f"token counts {[t for _, t in call_points]} are proportional to no feature of {feats}")


def _fit(xs: list[float], ys: dict[str, list[float]], where: str) -> tuple[list, dict[str, list[float]], float]:
    X = np.array([[1.0, x, x * x] for x in xs])
    scale = np.abs(X).max(axis=0)
    coef, worst = {}, 0.0
    for op, y in ys.items():
        y = np.array(y)
        beta, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
        beta = beta / scale
        rel = np.abs(X @ beta - y) / np.maximum(np.abs(y), 1.0)
        worst = max(worst, float(rel.max()))
        coef[op] = [float(b) if abs(b) > 1e-6 * max(1.0, np.abs(y).max()) / max(xs) ** 2 else 0.0 for b in beta]
    if worst > MAX_REL_RESIDUAL:
        raise RuntimeError(f"{where}: the 1, x, x^2 polynomial misses a traced point by {worst:.1e}")
    return coef, worst


OPS = ("attention", "linear", "conv", "other")


def _fit_traffic(xs: list[float], traffics: list[dict], where: str) -> tuple[dict, float]:
    """The site's (or block's) values moved as ``1, x, x^2`` polynomials per kind and byte class;
    the miss is measured against the site's whole traffic at that point."""
    X = np.array([[1.0, x, x * x] for x in xs])
    scale = np.abs(X).max(axis=0)
    total = np.array([sum(sum(t[k].values()) for k in KINDS) for t in traffics])
    out, worst = {}, 0.0
    for kind in KINDS:
        out[kind] = {}
        for cls in BYTE_CLASSES:
            y = np.array([t[kind][cls] for t in traffics])
            beta, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
            beta = beta / scale
            worst = max(worst, float((np.abs(X @ beta - y) / np.maximum(total, 1.0)).max()))
            out[kind][cls] = [float(b) for b in beta]
    if worst > MAX_REL_RESIDUAL:
        raise RuntimeError(f"{where}: the 1, x, x^2 traffic polynomial misses a traced point by {worst:.1e}")
    return out, worst


def build_component_table(spec: ModelSpec, component: str, verbose: bool = True) -> dict[str, Any]:
    calls = design_calls(spec, component)
    traces = []
    for c in calls:
        traces.append(trace_sites(spec, c))
        if verbose:
            print(f"  {spec.key} {component} {dict(c.features)}: {len(traces[-1]['sites'])} sites", file=sys.stderr)
    names = list(traces[0]["sites"])
    sites, worst, worst_t = [], 0.0, 0.0
    for name in names:
        pts = [(c, t["sites"][name]["tokens"]) for c, t in zip(calls, traces)]
        feat, k = _level_feature(pts)
        xs = [float(c.features[feat]) for c in calls]
        ys = {op: [t["sites"][name]["ops"][op] for t in traces] for op in OPS}
        if not all(ys["attention"]):
            raise RuntimeError(f"{spec.key} {component} {name}: 0 attention FLOPs attributed to the site")
        coef, w = _fit(xs, ys, f"{spec.key} {component} {name}")
        worst = max(worst, w)
        tcoef, w = _fit_traffic(xs, [t["sites"][name]["traffic"] for t in traces], f"{spec.key} {component} {name}")
        worst_t = max(worst_t, w)
        first = traces[0]["sites"][name]
        grid = first["grid"]
        entry = {"path": name, "block": _block_name(name), "transformer_block": first["transformer_block"],
                 "kind": first["kind"], "heads": first["heads"], "head_dim": first["head_dim"], "dim": first["dim"],
                 "feature": feat, "tokens_per_feature": k, "coef": coef, "traffic": tcoef}
        if grid is not None and len(grid) == 2 and spec.modality == "audio":
            bins = {t["sites"][name]["grid"][1] for t in traces}
            if len(bins) != 1:
                raise RuntimeError(f"{name}: frequency bins vary with the length: {bins}")
            entry["grid"] = {"axes": ["time", "freq"], "freq_bins": bins.pop()}
        elif grid is not None:
            entry["grid"] = {"axes": ["height", "width"] if len(grid) == 2 else ["frames", "height", "width"]}
        sites.append(entry)
    tblocks = []
    for tb in dict.fromkeys(s["transformer_block"] for s in sites if s["transformer_block"]):
        pts = [(c, t["blocks"][tb]["tokens"]) for c, t in zip(calls, traces)]
        feat, k = _level_feature(pts)
        xs = [float(c.features[feat]) for c in calls]
        ys = {op: [t["blocks"][tb]["ops"][op] for t in traces] for op in OPS}
        coef, w = _fit(xs, ys, f"{spec.key} {component} {tb}")
        worst = max(worst, w)
        tcoef, w = _fit_traffic(xs, [t["blocks"][tb]["traffic"] for t in traces], f"{spec.key} {component} {tb}")
        worst_t = max(worst_t, w)
        tblocks.append({"path": tb, "block": _block_name(tb), "feature": feat, "tokens_per_feature": k,
                        "dim": traces[0]["blocks"][tb]["dim"], "coef": coef, "traffic": tcoef})
    # the finest level: the blocks whose self-attention sites see the most tokens (largest design point)
    last = traces[-1]["sites"]
    self_sites = [s for s in sites if s["kind"] == "self"]
    most = max((last[s["path"]]["tokens"] for s in self_sites), default=0)
    finest = list(dict.fromkeys(s["block"] for s in self_sites if last[s["path"]]["tokens"] == most))
    return {"features": sorted(calls[0].features), "n_points": len(calls),
            "design": [dict(c.features) for c in calls], "max_rel_residual": worst,
            "traffic_max_rel_residual": worst_t,
            "finest_blocks": finest, "sites": sites, "transformer_blocks": tblocks}


def build_model(key: str, verbose: bool = True) -> dict[str, Any]:
    import diffusers
    import transformers

    spec = resolve_model(key)
    comps = {c: build_component_table(spec, c, verbose) for c in denoiser_components(spec)}
    return {
        "model": spec.key, "id": spec.id,
        "generated_by": "python -m profilers.flops.build_attention_sites",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "convention": ("FLOP of one call for one sample, per attention module (site) and per transformer block, as "
                       "polynomials coef[op] = [c0, c1, c2] in the site's level feature x (c0 + c1 x + c2 x^2); "
                       "tokens = tokens_per_feature * x; one multiply-add = 2 FLOP"),
        "components": comps,
    }


def keep_flops(table: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``table`` with the FLOP coefficients of ``previous`` where the design and the sites are the
    same (a refit in another library version can differ in the last digits; the traffic is new)."""
    for name, comp in table["components"].items():
        old = (previous or {}).get("components", {}).get(name)
        if old is None or not set(old["features"]) <= set(comp["features"]) or old["design"] != [
                {f: d[f] for f in old["features"]} for d in comp["design"]]:
            continue
        for key in ("sites", "transformer_blocks"):
            prev = {s["path"]: s for s in old[key]}
            for s in comp[key]:
                if s["path"] in prev and prev[s["path"]]["feature"] == s["feature"]:
                    s["coef"] = prev[s["path"]]["coef"]
        comp["max_rel_residual"] = old["max_rel_residual"]
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for key in argv or DEFAULT_MODELS:
        spec = resolve_model(key)
        path = OUT_DIR / f"{spec.key}.json"
        table = keep_flops(build_model(key), json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None)
        (OUT_DIR / f"{spec.key}.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        n = sum(len(c["sites"]) for c in table["components"].values())
        print(f"{spec.key}: {n} sites, worst residual "
              f"{max(c['max_rel_residual'] for c in table['components'].values()):.1e}")
    return 0


# -- traced cross-check of a variant ----------------------------------------------------------

def _litefocus_sdpa(freq_bins: int, r: float):
    """The authors' ``attention_lite_focus`` (same-frequency einsum + cross-frequency keys)."""
    def sdpa(q, k, v):
        b, h, L, d = q.shape
        t = L // freq_bins
        parts_w = []
        q5, k5, v5 = (x.reshape(b, h, t, freq_bins, x.shape[-1]) for x in (q, k, v))
        w_same = torch.einsum("bhtfc,bhyfc->bhtfy", q5, k5).reshape(b, h, L, t)
        parts_w.append(w_same)
        n = int(L * r)
        if n:
            kc, vc = k[:, :, :n], v[:, :, :n]  # which keys are drawn does not change the FLOPs
            parts_w.append(q @ kc.transpose(-2, -1))
        w = torch.softmax(torch.cat(parts_w, dim=-1), dim=-1)
        out = torch.einsum("bhtfy,bhyfc->bhtfc", w[..., :t].reshape(b, h, t, freq_bins, t), v5).reshape(b, h, L, -1)
        if n:
            out = out + w[..., t:] @ vc
        return out
    return sdpa


def _window_sdpa(size: int):
    def sdpa(q, k, v):
        b, h, L, d = q.shape
        n = min(size, k.shape[2])
        idx = (torch.arange(L).unsqueeze(1) + torch.arange(n).unsqueeze(0)).clamp(max=k.shape[2] - 1)
        kw, vw = k[:, :, idx], v[:, :, idx]                    # (b, h, L, n, d): gathers, not counted
        w = torch.softmax(torch.einsum("bhld,bhlnd->bhln", q, kw), dim=-1)
        return torch.einsum("bhln,bhlnd->bhld", w, vw)
    return sdpa


class _SDPAPatch(torch.overrides.TorchFunctionMode):
    """Replace F.scaled_dot_product_attention while one of the chosen modules runs."""

    def __init__(self):
        super().__init__()
        self.active: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and self.active:
            args = list(args)
            qkv = [args.pop(0) if args else kwargs.pop(name) for name in ("query", "key", "value")]
            return self.active[-1](*qkv)
        return func(*args, **kwargs)


class _Merged(torch.nn.Module):
    """Token merging around a module: bipartite similarity (counted), run on L' tokens, unmerge."""

    def __init__(self, inner: torch.nn.Module, freq_bins: int | None, ratio: float):
        super().__init__()
        self.inner = inner
        self.freq_bins = freq_bins
        self.ratio = ratio

    def forward(self, hidden_states, *args, **kwargs):
        b, L, c = hidden_states.shape
        keep, n_dst = tome_tokens(L, self.ratio, self.freq_bins)
        a, dst = hidden_states[:, : L - n_dst], hidden_states[:, L - n_dst:]
        _ = a @ dst.transpose(-2, -1)  # similarity scores (B, L - n_dst, n_dst)
        # per-token side inputs (rotary embeddings: dim 1 of length L) follow the kept tokens; the
        # text does not (a transformer block's first argument after the latent, or the keyword)
        def cut(x):
            if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] == L:
                return x[:, :keep]
            if isinstance(x, tuple):
                return tuple(cut(t) for t in x)
            return x
        is_block = type(self.inner).__name__.endswith("Block")
        args = tuple(a if (i == 0 and is_block) else cut(a) for i, a in enumerate(args))
        kwargs = {k: v if k == "encoder_hidden_states" else cut(v) for k, v in kwargs.items()}
        out = self.inner(hidden_states[:, :keep], *args, **kwargs)
        if isinstance(out, tuple):
            out = out[0]
        return torch.cat([out, out.new_zeros(b, L - keep, out.shape[-1])], dim=1)


@contextmanager
def _patched(inner: torch.nn.Module, component_table: dict, variant: AttentionVariant):
    sites = resolve_sites(component_table, variant)
    handles, swapped = [], []
    mode = _SDPAPatch()
    if variant.kind in ("litefocus", "window"):
        for s in sites:
            m = inner.get_submodule(s["path"])
            fn = (_litefocus_sdpa(s["grid"]["freq_bins"], variant.params["r"]) if variant.kind == "litefocus"
                  else _window_sdpa(int(variant.params["size"])))
            handles.append(m.register_forward_pre_hook(lambda mod, a, f=fn: mode.active.append(f) and None))
            handles.append(m.register_forward_hook(lambda mod, a, o: mode.active.pop() and None))
    elif variant.kind == "tome":
        targets = ({s["transformer_block"] for s in sites} if variant.params["merge"] == "all"
                   else {s["transformer_block"] + ".attn1" for s in sites})
        for path in sorted(targets):
            parent_path, _, child = path.rpartition(".")
            parent = inner.get_submodule(parent_path)
            orig = getattr(parent, child)
            site = next(s for s in sites if path.startswith(s["transformer_block"]))
            bins = site.get("grid", {}).get("freq_bins")
            setattr(parent, child, _Merged(orig, bins, variant.params["ratio"]))
            swapped.append((parent, child, orig))
    try:
        with mode:
            yield
    finally:
        for h in handles:
            h.remove()
        for parent, child, orig in swapped:
            setattr(parent, child, orig)


def trace_variant(spec: ModelSpec, call: ComponentCall, variant: AttentionVariant | str) -> dict[str, float]:
    """FLOPs of ONE call for ONE sample with ``variant`` run for real on the chosen sites."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    module, inner, fn, kwargs = _runner(spec, call)
    table = site_table(spec.key)["components"][call.component]
    counter = FlopCounterMode(display=False)
    with _patched(inner, table, variant), torch.no_grad(), torch.device("meta"), counter:
        fn(**kwargs)
    return traced._classify(module, counter, spec, call).as_dict()


if __name__ == "__main__":
    raise SystemExit(main())
