"""LiteFocus (Tan et al., Interspeech 2024) against full attention and Token Merging, as FLOPs.

AudioLDM 2 (cvssp/audioldm2, the seed's checkpoint family), 200 steps, CFG as the pipeline
runs it, clips of 10, 20, 40 and 80 s. For each clip length this prints the FLOPs of the
denoiser and of the whole generation with

- full attention;
- LiteFocus, r = 0.1, on the seed's blocks (the authors' code: the transformer modules of
  ``input_blocks[4, 5]`` and ``output_blocks[6, 7, 8]``, i.e. diffusers' ``down.1`` and
  ``up.2``; each self-attention query attends to the ``N_t`` tokens of its frequency band plus
  ``int(0.1 L)`` random tokens);
- Token Merging at ratio 0.5 on the same blocks with tomesd's defaults (merge for
  self-attention only), as the seed ran it;

the predicted speed-ups (FLOP ratio of the whole generation, and of the denoiser alone), the
seed's measured speed-ups next to them (Table 1, one A6000), and the attention share of the
total FLOPs with full attention. ``--plot out.html`` writes a plotly figure: FLOPs against
clip length (full attention grows quadratically), the attention share, and the speed-ups.

    python benchmarks/litefocus_speedup.py [--plot out.html] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from profilers.flops.attention_variants import component_sites, resolve_sites, parse_variant, site_rows  # noqa: E402
from profilers.flops.profile import profile  # noqa: E402
from scaling.registry import resolve_model  # noqa: E402
from scaling.settings import make_setting  # noqa: E402
from scaling.shapes import component_calls  # noqa: E402

MODEL = "audioldm2"
STEPS = 200
SECONDS = (10, 20, 40, 80)
SEED_SPEEDUP = {"litefocus": {10: 1.02, 20: 1.43, 40: 1.94, 80: 1.99},
                "tome": {10: 1.01, 20: 1.25, 40: 1.40, 80: 1.56}}
"""Table 1 of the seed: inference time of the original over the method, AudioLDM 2, 200 steps, A6000."""
SEED_BLOCKS = "down.1+up.2"
VARIANTS = {"litefocus": f"litefocus:r=0.1,blocks={SEED_BLOCKS}",
            "tome": f"tome:ratio=0.5,merge=attn,blocks={SEED_BLOCKS}"}
LITERAL = "litefocus:r=0.1,blocks=down.1+up.1"
"""The paper's words read literally in diffusers' numbering (second down block, second up block)."""

HONESTY = (
    "FLOP ratios are not time ratios. They would bound the time speed-up from above if the removed work ran as "
    "efficiently as what is left, but (1) the sparse kernels (gathers, concatenation, extra softmax, small einsums) "
    "run below peak and the fixed costs (GPT-2 generation, VAE, vocoder, launches) do not shrink, which is why the "
    "seed's 1.02x at 10 s sits below the FLOP ratio; and (2) eager attention with a materialised L x L score matrix "
    "(as the authors' LiteFocus code computes it) is memory-bound: its softmax and score traffic are not "
    "FLOPs, so attention's share of the TIME is larger than its share of the FLOPs and removing it saves more time "
    "than FLOPs, which is why the seed's 1.43-1.99x at 20-80 s sit above the FLOP ratio. The last column gives the "
    "attention time share that the seed's LiteFocus speed-up implies (if attention time scales with its FLOPs "
    "site by site): compare it with the FLOP share.")


def rows():
    spec = resolve_model(MODEL)
    out = []
    for sec in SECONDS:
        s = make_setting(spec, seconds=sec, steps=STEPS)
        full = profile(s, spec=spec)
        row = {"seconds": sec, "latent_frames": next(c for c in component_calls(spec, s)
                                                     if c.component == "unet").features["T"],
               "total_full": full.total_flop, "denoiser_full": full.by_role()["denoiser"],
               "attention_full": full.by_op()["attention"]}
        row["attention_share"] = row["attention_full"] / row["total_full"]
        for name, v in list(VARIANTS.items()) + [("litefocus_literal", LITERAL)]:
            p = profile(s, spec=spec, attention=v)
            row[f"total_{name}"] = p.total_flop
            row[f"denoiser_{name}"] = p.by_role()["denoiser"]
            row[f"speedup_{name}"] = full.total_flop / p.total_flop
            row[f"denoiser_speedup_{name}"] = row["denoiser_full"] / row[f"denoiser_{name}"]
        # the attention FLOPs LiteFocus removes, as a fraction of all attention FLOPs
        removed = (row["total_full"] - row["total_litefocus"]) / row["attention_full"]
        seed = SEED_SPEEDUP["litefocus"][sec]
        row["implied_attention_time_share"] = (1 - 1 / seed) / removed
        row["seed_litefocus"], row["seed_tome"] = seed, SEED_SPEEDUP["tome"][sec]
        out.append(row)
    return out


def curve(step: float = 2.5):
    """Dense FLOP curves for the plot."""
    spec = resolve_model(MODEL)
    xs, full_t, lf_t, tome_t, attn = [], [], [], [], []
    sec = 5.0
    while sec <= 80.0 + 1e-9:
        s = make_setting(spec, seconds=sec, steps=STEPS)
        f = profile(s, spec=spec)
        xs.append(sec)
        full_t.append(f.total_flop)
        attn.append(f.by_op()["attention"])
        lf_t.append(profile(s, spec=spec, attention=VARIANTS["litefocus"]).total_flop)
        tome_t.append(profile(s, spec=spec, attention=VARIANTS["tome"]).total_flop)
        sec += step
    return xs, full_t, lf_t, tome_t, attn


def plot(path: Path, table) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    xs, full_t, lf_t, tome_t, attn = curve()
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "FLOPs per generation (PFLOP)", "attention share of total FLOPs (full attention)",
        "speed-up over full attention"))
    pf = 1e15
    fig.add_trace(go.Scatter(x=xs, y=[v / pf for v in full_t], name="full attention", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=[v / pf for v in lf_t], name="LiteFocus r=0.1", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=[v / pf for v in tome_t], name="ToMe ratio 0.5", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=[v / pf for v in attn], name="attention FLOPs (full): quadratic",
                             mode="lines", line={"dash": "dot"}), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=[a / t for a, t in zip(attn, full_t)], name="attention share",
                             mode="lines", showlegend=False), 1, 2)
    sec = [r["seconds"] for r in table]
    fig.add_trace(go.Scatter(x=sec, y=[r["implied_attention_time_share"] for r in table], mode="markers",
                             name="attention TIME share implied by the seed's LiteFocus speed-up"), 1, 2)
    for name, label in (("litefocus", "LiteFocus"), ("tome", "ToMe")):
        fig.add_trace(go.Scatter(x=sec, y=[r[f"speedup_{name}"] for r in table], mode="lines+markers",
                                 name=f"{label}: predicted (FLOP ratio)"), 1, 3)
        fig.add_trace(go.Scatter(x=sec, y=[r[f"seed_{name}"] for r in table], mode="markers",
                                 marker={"symbol": "x", "size": 10}, name=f"{label}: seed, measured (A6000)"), 1, 3)
    fig.update_xaxes(title_text="clip length (s)")
    fig.update_layout(title=f"AudioLDM 2, {STEPS} steps: LiteFocus and Token Merging as FLOPs (FLOP ratios are "
                            "not time ratios)", height=480, width=1500)
    fig.write_html(str(path), include_plotlyjs=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot", type=Path, help="write the plotly figure here (HTML)")
    ap.add_argument("--json", type=Path, help="write the table here (JSON)")
    args = ap.parse_args(argv)
    spec = resolve_model(MODEL)
    table = rows()
    comp = component_sites(spec, "unet")
    lf_sites = resolve_sites(comp, parse_variant(VARIANTS["litefocus"]))
    n_self = sum(s["kind"] == "self" for s in comp["sites"])
    print(f"model {spec.id}, {STEPS} steps, CFG {make_setting(spec).guidance_scale:g} (two UNet passes per step)")
    print(f"LiteFocus r=0.1 and ToMe ratio 0.5 (tomesd defaults: merge for self-attention only) on blocks "
          f"{SEED_BLOCKS}: {len(lf_sites)} of the UNet's {n_self} self-attention sites")
    ex = site_rows(spec, "unet", VARIANTS["litefocus"],
                   next(c for c in component_calls(spec, make_setting(spec, seconds=80, steps=1))
                        if c.component == "unet").features)[0]
    print(f"at 80 s a site of down.1 has L = {ex['tokens']} tokens: {ex['keys']} keys per query instead of {ex['tokens']}"
          "\n")
    T = 1e12
    hdr = (f"{'clip':>5} {'T':>5} | {'denoiser TFLOP':^26} | {'total TFLOP':^26} | {'speed-up, whole generation':^34} |"
           f" {'denoiser only':^13} | {'attention share':^15}")
    sub = (f"{'s':>5} {'':>5} | {'full':>8} {'LiteF':>8} {'ToMe':>8} | {'full':>8} {'LiteF':>8} {'ToMe':>8} |"
           f" {'LiteF':>6} {'seed':>5} {'ToMe':>6} {'seed':>5} {'lit.':>6} | {'LiteF':>6} {'ToMe':>6} |"
           f" {'FLOP':>6} {'time*':>7}")
    print(hdr)
    print(sub)
    print("-" * len(sub))
    for r in table:
        print(f"{r['seconds']:>5} {r['latent_frames']:>5} | {r['denoiser_full'] / T:>8.1f} {r['denoiser_litefocus'] / T:>8.1f}"
              f" {r['denoiser_tome'] / T:>8.1f} | {r['total_full'] / T:>8.1f} {r['total_litefocus'] / T:>8.1f}"
              f" {r['total_tome'] / T:>8.1f} | {r['speedup_litefocus']:>5.2f}x {r['seed_litefocus']:>4.2f}x"
              f" {r['speedup_tome']:>5.2f}x {r['seed_tome']:>4.2f}x {r['speedup_litefocus_literal']:>5.2f}x |"
              f" {r['denoiser_speedup_litefocus']:>5.2f}x {r['denoiser_speedup_tome']:>5.2f}x |"
              f" {r['attention_share']:>6.1%} {r['implied_attention_time_share']:>7.1%}")
    print("\nseed = measured in the paper (Table 1, A6000); lit. = LiteFocus on down.1+up.1 (the paper's words read in "
          "diffusers' numbering);\ntime* = attention share of the time implied by the seed's LiteFocus speed-up.")
    f10, f80 = table[0]["attention_full"], table[-1]["attention_full"]
    t10, t80 = table[0]["latent_frames"], table[-1]["latent_frames"]
    print(f"full-attention FLOPs grow {f80 / f10:.1f}x from 10 to 80 s (latent frames x{t80 / t10:g}; "
          f"quadratic would be x{(t80 / t10) ** 2:g}); the total grows {table[-1]['total_full'] / table[0]['total_full']:.1f}x.")
    print("\n" + HONESTY)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot(args.plot, table)
        print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
