"""Attention variants: what sparse or reduced attention does to a component's FLOPs and bytes. No torch.

A variant is given per component as a string (``--attention`` on the command line,
``profile(setting, attention=...)`` in Python)::

    full                                      the default: every query attends to every key
    litefocus:r=0.1[,blocks=down.1+up.2]      LiteFocus (Tan et al. 2024), mel-latent UNets
    tome:ratio=0.5[,merge=attn|all][,blocks=...]   token merging (Bolya & Hoffman 2023, tomesd)
    window:size=512[,blocks=...]              local windows of ``size`` keys per query

prefixed with ``COMPONENT=`` to pick the component (``unet=litefocus:r=0.1``; without a prefix
the variant applies to the denoiser), several joined with ``;``.

Every variant also takes ``kernel=sdpa`` (the default: a fused kernel, diffusers'
``AttnProcessor2_0``, moving Q, K, V and O only) or ``kernel=eager`` (the score matrix is
materialised, as in the original AudioLDM / LiteFocus code and diffusers' classic
``AttnProcessor``): ``full:kernel=eager`` is full attention computed eagerly. An eager kernel
changes no FLOPs; it adds the score-matrix traffic of every attention site of the component
(self and cross), :data:`EAGER_SCORE_PASSES` passes over its ``heads x L_q x L_k`` values
(``heads x L_q x L_k = attention FLOP / (4 head_dim)``), after the variant (LiteFocus and windows
keep ``keys / L`` of it). Not modelled with ``tome``.

What each variant changes, exactly, on the *self-attention sites* of the chosen blocks (an
attention module whose call passes no ``encoder_hidden_states``; cross-attention is never
changed):

- ``litefocus``: each query attends to the ``N_t = L / N_f`` tokens of its own frequency band
  (same-frequency focus S_i, ``N_f`` = the site's mel bins) plus ``int(r * L)`` random tokens
  (cross-frequency compensation C), concatenated as in the authors' code (a key in both sets is
  computed twice): the QK^T and AV FLOPs of the site become ``4 * heads * head_dim * L *
  (N_t + int(r L))`` instead of ``4 * heads * head_dim * L^2``. The Q/K/V/out projections are
  unchanged. Default blocks: the seed's, the transformer modules at the finest attention level,
  in the down path and its mirror in the up path (AudioLDM 2: ``down.1`` and ``up.2``; the
  authors' ``input_blocks[4, 5]`` and ``output_blocks[6, 7, 8]``; see the note below).
- ``window``: each query attends to ``min(size, L)`` keys: the QK^T and AV FLOPs scale by
  ``min(size, L) / L``; projections unchanged. Default blocks: all.
- ``tome``: token merging as tomesd does it (2x2 destination grid, ``r = int(ratio * L)``
  tokens merged, at most the ``L - n_dst`` source tokens): ``merge=attn`` (tomesd's default,
  and what the seed ran) runs ``attn1`` of each chosen transformer block on ``L' = L - r``
  tokens: its Q/K/V/out projections by ``L'/L`` and its QK^T/AV by ``(L'/L)^2``;
  ``merge=all`` runs the whole transformer block (both attentions, the feed-forward, their
  projections; the cross-attention's K/V projections of the text stay) on ``L'`` tokens. Added:
  the bipartite matching, a ``(L - n_dst) x n_dst x dim`` similarity matmul per block
  (``other``); the sort, gather and scatter are element-wise (not counted). Default blocks: the
  finest level (tomesd's ``max_downsample=1``).

Bytes moved (the site tables' ``traffic`` polynomials, same fusion assumptions as the closed-form
tables, :mod:`profilers.flops.counting`), changed on the same sites:

- ``litefocus`` and ``window``: the score-matrix traffic of an eager site (the ``x^2`` term of
  its attention-class activation traffic: the score matrix written by QK^T, read and written by
  scale / mask / softmax, read by AV) scales with the kept keys, ``keys / L``, like the FLOPs;
  Q, K, V and O are read and written once as before. A fused (SDPA) site has no score traffic:
  its bytes do not change (a fused sparse kernel still reads Q, K, V and writes O);
- ``tome``: the merged module (``attn1``, or the whole block with ``merge=all``) moves its
  traffic polynomial evaluated at ``L'`` (Q/K/V/O, projections' activations and element-wise work
  by ``L'/L``, score traffic by ``(L'/L)^2``; its weights unchanged), plus the merging itself: the
  similarity matmul reads both token sets and writes the ``(L - n_dst) x n_dst`` scores
  (``other``), and the merge and unmerge copy the tokens (read ``L``, write ``L'``; read ``L'``,
  write ``L``: ``2 (L + L') dim`` values, ``elementwise``).

Traced profiles use the same byte rules (the patched reference implementations that
``trace_variant`` runs are eager and are not what a fused variant kernel moves).

Seed's block choice: the paper says "the second block of the down blocks and the second block of
the up blocks"; the authors' code (``inject_lite_focus``) patches ``input_blocks[4, 5]`` and
``output_blocks[6, 7, 8]`` of the original AudioLDM 2 UNet with ``f_n = 8`` mel bins, which are
the transformer modules of diffusers' ``down_blocks[1]`` and ``up_blocks[2]`` (the up path counts
from the bottom: ``up_blocks[1]`` runs at a quarter of the frames with 4 bins). ``blocks=down.1+up.1``
reproduces the literal reading.

The site tables (``scaling/_registry/attention_sites/<key>.json``) are built once with torch by
``python -m profilers.flops.build_attention_sites``: per attention module, its path, block, kind,
heads x head_dim, token grid and FLOP polynomial in the component's level feature.
``profilers.flops.profile`` applies the variants to a profile: closed-form profiles with
:func:`apply_variant` (this module), traced ones with ``build_attention_sites.trace_variant``.

Length: about 500 lines: one grammar (the variant strings) and the FLOP and byte rule of each
variant, which are checked against each other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Mapping

from scaling.errors import InvalidSettingError

KINDS = ("full", "litefocus", "tome", "window")
OP_CLASSES = ("attention", "linear", "conv", "other")
_KEYS = {"full": ("kernel",), "litefocus": ("r", "blocks", "kernel"), "tome": ("ratio", "merge", "blocks", "kernel"),
         "window": ("size", "blocks", "kernel")}
_USAGE = ("use full, litefocus:r=R, tome:ratio=R or window:size=N (optionally ,blocks=down.1+up.2 and "
          ",kernel=sdpa|eager)")
ATTENTION_KERNELS = ("sdpa", "eager")
#: Passes over the score matrix of an eager attention: written by QK^T, read and written by the
#: scale, read and written by the softmax, read by AV (the rule of :mod:`profilers.flops.counting`
#: for an eager site).
EAGER_SCORE_PASSES = 6
_BLOCK_TOKEN = re.compile(r"^(all|finest|mid|(down|up)\.\d+|(blocks|single)\.\d+(-\d+)?)$")
_PREFIX = re.compile(r"^\s*([A-Za-z_][\w]*)\s*=\s*(full|litefocus|tome|window)\b(.*)$", re.IGNORECASE)
TOME_MAX_RATIO = 0.75


@dataclass(frozen=True)
class AttentionVariant:
    """One parsed variant (``kind`` and its parameters; ``blocks`` None = the variant's default)."""

    kind: str = "full"
    params: Mapping[str, Any] = field(default_factory=dict)
    blocks: tuple[str, ...] | None = None

    @property
    def kernel(self) -> str:
        """``sdpa`` (fused, the default) or ``eager`` (the score matrix materialised)."""
        return self.params.get("kernel", "sdpa")

    def __str__(self) -> str:
        if self.kind == "full":
            return "full" if self.kernel == "sdpa" else "full:kernel=eager"
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
                 if not (k == "kernel" and v == "sdpa")]
        if self.blocks is not None:
            parts.append("blocks=" + "+".join(self.blocks))
        return f"{self.kind}:" + ",".join(parts)


def _bad(text: str, why: str) -> InvalidSettingError:
    return InvalidSettingError(f"attention variant {text!r}: {why}")


def parse_variant(text: str) -> AttentionVariant:
    """``'litefocus:r=0.1'`` -> AttentionVariant; a one-line InvalidSettingError on a bad string."""
    if isinstance(text, AttentionVariant):
        return text
    if not isinstance(text, str) or not text.strip():
        raise _bad(str(text), f"empty: {_USAGE}")
    raw = text.strip()
    kind, _, rest = raw.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise _bad(raw, f"unknown variant {kind!r}: {_USAGE}")
    values: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = item.partition("=")
        k, v = k.strip().lower(), v.strip()
        if not eq or not v:
            raise _bad(raw, f"{item!r} is not key=value")
        if k not in _KEYS[kind]:
            allowed = ", ".join(_KEYS[kind]) or "no parameters"
            raise _bad(raw, f"{kind} takes {allowed}, not {k!r}")
        if k in values:
            raise _bad(raw, f"{k!r} is given twice")
        values[k] = v
    params: dict[str, Any] = {}
    if kind == "litefocus":
        params["r"] = _number(raw, "r", values.get("r", "0.1"), 0.0, 1.0, "the fraction of all tokens drawn as "
                              "cross-frequency compensation, 0 <= r <= 1")
    elif kind == "tome":
        params["ratio"] = _number(raw, "ratio", values.get("ratio", "0.5"), 0.0, TOME_MAX_RATIO,
                                  f"the fraction of tokens merged, 0 < ratio <= {TOME_MAX_RATIO} (with a 2x2 "
                                  "destination grid at most the 3/4 source tokens can merge)", open_low=True)
        merge = values.get("merge", "attn").lower()
        if merge not in ("attn", "all"):
            raise _bad(raw, f"merge={merge!r}: use merge=attn (self-attention only, tomesd's default) or merge=all "
                            "(the whole transformer block: attentions and feed-forward)")
        params["merge"] = merge
    elif kind == "window":
        if "size" not in values:
            raise _bad(raw, "window needs size=N (keys per query), e.g. window:size=512")
        try:
            size = int(values["size"])
        except ValueError:
            raise _bad(raw, f"size={values['size']!r} must be a whole number of keys >= 1") from None
        if size < 1:
            raise _bad(raw, f"size={size} must be a whole number of keys >= 1")
        params["size"] = size
    kernel = values.get("kernel", "sdpa").lower()
    if kernel not in ATTENTION_KERNELS:
        raise _bad(raw, f"kernel={kernel!r}: use kernel=sdpa (fused, the default) or kernel=eager (the score matrix "
                        "materialised)")
    if kernel == "eager":
        if kind == "tome":
            raise _bad(raw, "kernel=eager is not modelled with tome (use it with full, litefocus or window)")
        params["kernel"] = kernel
    blocks = None
    if "blocks" in values:
        blocks = tuple(b.strip().lower() for b in values["blocks"].split("+") if b.strip())
        bad = [b for b in blocks if not _BLOCK_TOKEN.match(b)]
        if not blocks or bad:
            raise _bad(raw, f"blocks={values['blocks']!r}: name blocks as down.N, up.N, mid, blocks.N, blocks.N-M, "
                            "finest or all, joined with '+'")
    return AttentionVariant(kind=kind, params=params, blocks=blocks)


def _number(raw: str, key: str, value: str, lo: float, hi: float, rule: str, open_low: bool = False) -> float:
    try:
        x = float(value)
    except ValueError:
        raise _bad(raw, f"{key}={value!r} is not a number: {rule}") from None
    if not (lo < x <= hi if open_low else lo <= x <= hi) or x != x:
        raise _bad(raw, f"{key}={value}: {rule}")
    return x


def parse_attention(spec: str | Mapping[str, str] | None) -> dict[str | None, AttentionVariant]:
    """``'unet=litefocus:r=0.1;vae=full'`` or ``{'unet': 'litefocus'}`` -> {component: variant}.

    The key None means "the denoiser component(s)"."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {k: parse_variant(v) for k, v in spec.items()}
    if isinstance(spec, AttentionVariant):
        return {None: spec}
    out: dict[str | None, AttentionVariant] = {}
    for item in filter(None, (p.strip() for p in str(spec).split(";"))):
        m = _PREFIX.match(item)
        comp, text = (m.group(1), m.group(2) + m.group(3)) if m else (None, item)
        if comp in out:
            raise _bad(item, f"two variants for {comp or 'the denoiser'}")
        out[comp] = parse_variant(text)
    return out


# -- site tables -------------------------------------------------------------------------------

@cache
def _load(key: str) -> dict[str, Any] | None:
    path = resources.files("scaling").joinpath("_registry", "attention_sites", f"{key}.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def site_table(model: Any) -> dict[str, Any]:
    """The site table of a model (``ModelSpec`` or registry key)."""
    key = getattr(model, "architecture_key", None) or getattr(model, "key", None) or str(model)
    table = _load(key)
    if table is None:
        raise InvalidSettingError(
            f"attention variants need the attention-site table of {key!r}, which is not built: run "
            f"`python -m profilers.flops.build_attention_sites {key}`")
    return table


def has_sites(model: Any) -> bool:
    try:
        site_table(model)
        return True
    except InvalidSettingError:
        return False


def component_sites(model: Any, component: str) -> dict[str, Any]:
    table = site_table(model)
    comp = table["components"].get(component)
    if comp is None:
        have = ", ".join(table["components"]) or "none"
        raise InvalidSettingError(
            f"attention variants apply to components with attention sites; {component!r} of {table['id']} has none "
            f"in the site table (components with sites: {have})")
    return comp


def _expand(token: str) -> list[str]:
    m = re.match(r"^(blocks|single)\.(\d+)-(\d+)$", token)
    if m:
        return [f"{m.group(1)}.{i}" for i in range(int(m.group(2)), int(m.group(3)) + 1)]
    return [token]


def resolve_sites(component_table: Mapping[str, Any], variant: AttentionVariant) -> list[dict[str, Any]]:
    """The self-attention sites the variant changes (in table order)."""
    self_sites = [s for s in component_table["sites"] if s["kind"] == "self"]
    available = list(dict.fromkeys(s["block"] for s in self_sites))
    blocks = variant.blocks
    if blocks is None:
        blocks = ("all",) if variant.kind == "window" else ("finest",)
    chosen: list[str] = []
    for b in blocks:
        if b == "all":
            chosen += available
        elif b == "finest":
            chosen += component_table["finest_blocks"]
        else:
            for name in _expand(b):
                if name not in available:
                    raise InvalidSettingError(
                        f"attention variant {variant}: block {name!r} has no self-attention sites; blocks with sites: "
                        f"{', '.join(available)}")
                chosen.append(name)
    chosen = set(chosen)
    sites = [s for s in self_sites if s["block"] in chosen]
    if variant.kind == "litefocus":
        missing = [s["path"] for s in sites if not s.get("grid", {}).get("freq_bins")]
        if missing:
            raise InvalidSettingError(
                f"attention variant {variant}: LiteFocus groups tokens by mel frequency band; {missing[0]} has no "
                "(time, freq) grid (use it on mel-latent audio UNets such as audioldm2)")
    return sites


def block_names(model: Any, component: str) -> list[str]:
    """The blocks with self-attention sites, in order."""
    comp = component_sites(model, component)
    return list(dict.fromkeys(s["block"] for s in comp["sites"] if s["kind"] == "self"))


def default_blocks(model: Any, component: str, variant: AttentionVariant | str) -> list[str]:
    variant = parse_variant(variant)
    comp = component_sites(model, component)
    return list(dict.fromkeys(s["block"] for s in resolve_sites(comp, variant)))


# -- the arithmetic -----------------------------------------------------------------------------

def _poly(coef: Mapping[str, list[float]], x: float) -> dict[str, float]:
    return {op: c[0] + c[1] * x + c[2] * x * x for op, c in coef.items()}


def tome_tokens(L: int, ratio: float, freq_bins: int | None = None) -> tuple[int, int]:
    """(tokens after merging, destination tokens) as tomesd computes them for a grid of ``L`` tokens.

    The destinations are one token per 2x2 cell (``(h // 2) * (w // 2)``; a mel grid is
    ``(L / freq_bins, freq_bins)``; without a grid ``L // 4``); ``r = int(L * ratio)`` tokens are
    merged, at most the ``L - n_dst`` source tokens."""
    if freq_bins:
        n_dst = (L // freq_bins // 2) * (freq_bins // 2)
    else:
        n_dst = L // 4
    r = min(int(L * ratio), L - n_dst)
    return L - r, n_dst


def _site_tokens(site: Mapping[str, Any], features: Mapping[str, float]) -> tuple[float, int]:
    """(feature value x, token count L) of one attention site at ``features``."""
    x = float(features[site["feature"]])
    return x, int(round(site["tokens_per_feature"] * x))


def _kept_keys(variant: AttentionVariant, site: Mapping[str, Any], L: int) -> int:
    """Keys per query that LiteFocus (a frequency band plus ``r`` of the tokens) or a window keeps."""
    if variant.kind == "litefocus":
        return L // site["grid"]["freq_bins"] + int(L * variant.params["r"])
    return min(int(variant.params["size"]), L)


def _tome_blocks(comp: Mapping[str, Any], sites: list, variant: AttentionVariant, features: Mapping[str, float]):
    """For each transformer block that ToMe merges: (block, part, x, L, keep, n_dst, x_merged), where
    ``part`` is the block (``merge=all``) or its self-attention site (the site table entry whose
    ``coef`` / ``traffic`` change)."""
    blocks = {b["path"]: b for b in comp["transformer_blocks"]}
    by_path = {s["path"]: s for s in comp["sites"]}
    for tb in dict.fromkeys(s["transformer_block"] for s in sites if s["transformer_block"]):
        blk = blocks[tb]
        x, L = _site_tokens(blk, features)
        first = next(s for s in sites if s["transformer_block"] == tb)
        keep, n_dst = tome_tokens(L, variant.params["ratio"], first.get("grid", {}).get("freq_bins"))
        xs = x * keep / L if L else x
        if variant.params["merge"] == "all":
            part = blk
        else:
            part = by_path.get(tb + ".attn1")
            if part is None or part["kind"] != "self":
                continue
        yield blk, part, x, L, keep, n_dst, xs


def site_rows(model: Any, component: str, variant: AttentionVariant | str,
              features: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per changed site: tokens, keys per query (full / variant) and the FLOP change by op class."""
    variant = parse_variant(variant)
    if variant.kind == "full":
        return []
    comp = component_sites(model, component)
    sites = resolve_sites(comp, variant)
    rows = []
    if variant.kind in ("litefocus", "window"):
        for s in sites:
            x, L = _site_tokens(s, features)
            full = _poly(s["coef"], x)
            keys = _kept_keys(variant, s, L)
            new_att = full["attention"] * keys / L if L else 0.0
            rows.append({"path": s["path"], "block": s["block"], "tokens": L, "keys_full": L, "keys": keys,
                         "flop_full": full, "delta": {"attention": new_att - full["attention"]}})
        return rows
    # tome: per transformer block holding a chosen site
    for blk, part, x, L, keep, n_dst, xs in _tome_blocks(comp, sites, variant, features):
        full, new = _poly(part["coef"], x), _poly(part["coef"], xs)
        delta = {op: new[op] - full[op] for op in OP_CLASSES}
        delta["other"] += 2.0 * (L - n_dst) * n_dst * blk["dim"]  # bipartite similarity scores
        rows.append({"path": blk["path"], "block": blk["block"], "tokens": L, "keys_full": L, "keys": keep,
                     "flop_full": full, "delta": delta})
    return rows


TRAFFIC_KINDS = ("activation", "weight", "fixed_byte")
BYTE_CLASSES = OP_CLASSES + ("elementwise",)


def _tpoly(traffic: Mapping[str, Mapping[str, list[float]]], x: float) -> dict[str, dict[str, float]]:
    return {k: {c: v[0] + v[1] * x + v[2] * x * x for c, v in traffic[k].items()} for k in traffic}


def variant_traffic_delta(model: Any, component: str, variant: AttentionVariant | str,
                          features: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Change of the values moved by ONE call for ONE sample (activation / weight / fixed_byte,
    by byte class); the rules are in the module doc."""
    variant = parse_variant(variant)
    out = {k: dict.fromkeys(BYTE_CLASSES, 0.0) for k in TRAFFIC_KINDS}
    if variant.kind == "full" and variant.kernel == "sdpa":
        return out
    comp = component_sites(model, component)
    sites = resolve_sites(comp, variant) if variant.kind != "full" else []
    if any("traffic" not in s for s in comp["sites"]):
        raise InvalidSettingError(
            f"attention variants: the attention-site table of {site_table(model)['id']} has no byte counts: rebuild it "
            "with `python -m profilers.flops.build_attention_sites`")
    kept = {}  # path -> share of the keys a changed site keeps
    if variant.kind in ("litefocus", "window"):
        for s in sites:
            x, L = _site_tokens(s, features)
            keys = _kept_keys(variant, s, L)
            kept[s["path"]] = keys / L if L else 1.0
            scores = s["traffic"]["activation"]["attention"][2] * x * x
            out["activation"]["attention"] += scores * (keys / L - 1.0) if L else 0.0
    if variant.kernel == "eager":
        out["activation"]["attention"] += eager_score_values(comp, features, kept)
    if variant.kind != "tome":
        return out
    for blk, part, x, L, keep, n_dst, xs in _tome_blocks(comp, sites, variant, features):
        full, new = _tpoly(part["traffic"], x), _tpoly(part["traffic"], xs)
        for k in TRAFFIC_KINDS:
            for c in BYTE_CLASSES:
                out[k][c] += new[k].get(c, 0.0) - full[k].get(c, 0.0)
        dim = blk["dim"]
        out["activation"]["other"] += (L - n_dst) * dim + n_dst * dim + (L - n_dst) * n_dst  # similarity scores
        out["activation"]["elementwise"] += 2.0 * (L + keep) * dim                             # merge + unmerge
    return out


def eager_score_values(component_table: Mapping[str, Any], features: Mapping[str, float],
                       kept: Mapping[str, float] | None = None) -> float:
    """Score-matrix values an eager kernel moves in ONE call for ONE sample, over every attention
    site of the component: :data:`EAGER_SCORE_PASSES` x ``heads x L_q x L_k`` per site, the
    latter read off the site's attention FLOP (``4 heads head_dim L_q L_k``), times the share of
    the keys a variant keeps (``kept``: site path -> share)."""
    kept = kept or {}
    total = 0.0
    for s in component_table["sites"]:
        x, _ = _site_tokens(s, features)
        att = _poly(s["coef"], x)["attention"]
        total += EAGER_SCORE_PASSES * att / (4.0 * s["head_dim"]) * kept.get(s["path"], 1.0)
    return total


def apply_variant_traffic(traffic: Mapping[str, Mapping[str, float]], variant: AttentionVariant | str,
                          features: Mapping[str, float], *, model: Any, component: str) -> dict[str, dict[str, float]]:
    """The traffic of one call (one sample) of ``component`` with ``variant`` instead of full attention."""
    delta = variant_traffic_delta(model, component, variant, features)
    return {k: {c: max(0.0, float(traffic[k].get(c, 0.0)) + delta[k].get(c, 0.0)) for c in BYTE_CLASSES}
            for k in TRAFFIC_KINDS}


def variant_delta(model: Any, component: str, variant: AttentionVariant | str,
                  features: Mapping[str, float]) -> dict[str, float]:
    """FLOP change of ONE call for ONE sample, by op class."""
    out = dict.fromkeys(OP_CLASSES, 0.0)
    for row in site_rows(model, component, variant, features):
        for op, v in row["delta"].items():
            out[op] += v
    return out


def apply_variant(flops: Mapping[str, float], variant: AttentionVariant | str, features: Mapping[str, float], *,
                  model: Any, component: str) -> dict[str, float]:
    """The by-op FLOPs of one call (one sample) of ``component`` with ``variant`` instead of full attention.

    ``flops`` is the full-attention count (``ComponentFlops.per_sample_call_flop``), ``features``
    the call's closed-form variables (``ComponentCall.features``)."""
    delta = variant_delta(model, component, variant, features)
    return {op: float(flops.get(op, 0.0)) + delta.get(op, 0.0) for op in flops}


def variants_for(prof_components, attention, model_id: str = "") -> dict[str, AttentionVariant]:
    """{component name: variant} for the components of a profile (None -> the denoisers)."""
    parsed = parse_attention(attention)
    names = list(dict.fromkeys(c.component for c in prof_components))
    out: dict[str, AttentionVariant] = {}
    for comp, v in parsed.items():
        if comp is None:
            targets = list(dict.fromkeys(c.component for c in prof_components if c.role == "denoiser"))
            if not targets:
                raise InvalidSettingError(f"attention variant {v}: {model_id} has no denoiser component")
        elif comp not in names:
            raise InvalidSettingError(
                f"attention variant {v}: {model_id} has no component {comp!r} (components: {', '.join(names)})")
        else:
            targets = [comp]
        for t in targets:
            out[t] = v
    return out
