"""Peak memory per component: weights at the precision (+ quantisation scales), the activation
estimate (traced peak of live tensors, fitted), the GPU fit verdicts and `scaling profile`'s
columns."""

from __future__ import annotations

import json

import pytest

from profilers.flops.memory import (
    GiB, RUNTIME_OVERHEAD_BYTE, _memory_table, fmt_byte, memory_profile, trace_peak_elements, weights_byte)
from profilers.flops.profile import parameter_counts
from scaling.registry import list_models, resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls


def test_weight_bytes_per_precision():
    n = 1_000_000
    assert weights_byte(n, "fp32") == weights_byte(n, "tf32") == 4 * n
    assert weights_byte(n, "bf16") == weights_byte(n, "fp16") == 2 * n
    # quantised: linear weights at the precision (+ scales), everything else in bf16
    assert weights_byte(n, "int8", linear_params=n, linear_rows=1000) == n + 4 * 1000
    assert weights_byte(n, "fp8", linear_params=600_000, linear_rows=100) == 600_000 + 400 + 2 * 400_000
    assert weights_byte(n, "nf4", linear_params=n, linear_rows=0) == pytest.approx(0.5625 * n)
    assert weights_byte(n, "fp4", linear_params=0) == 2 * n                       # nothing quantisable
    assert weights_byte(n, "nf4") == pytest.approx(0.5625 * n)                    # no split recorded
    with pytest.raises(ValueError):
        weights_byte(n, "int4")


def test_every_model_with_a_flop_table_has_a_memory_table():
    for spec in list_models():
        try:
            params = parameter_counts(spec)
        except Exception:  # noqa: BLE001  no closed-form table
            continue
        mem = _memory_table(spec.architecture_key)
        assert mem is not None, spec.key
        for name, n in params.items():
            comp = mem["components"][name]
            assert 0 <= comp["linear_params"] <= n and comp["linear_rows"] >= 0
        calls = {c.key for c in component_calls(spec, make_setting(spec, steps=1))}
        fitted = {k for c in mem["components"].values() for k in c["activation"]}
        assert calls <= fitted, (spec.key, calls - fitted)


def test_wan_bf16_weights_and_fit_on_h100():
    m = memory_profile(make_setting("wan2.1", res="480p", frames=81), gpu="h100")
    comps = {c.component: c for c in m.components}
    # 1.42 B transformer parameters at 2 B each
    assert comps["transformer"].weights_byte == pytest.approx(2 * 1.419e9, rel=1e-3)
    assert comps["transformer"].samples_per_call == 2                             # CFG as one batch of 2
    assert all(c.activation_byte and c.activation_byte > 0 for c in m.components)
    assert m.gpu == "h100-sxm" and m.gpu_memory_byte == 80 * GiB
    assert m.pipeline_fit() == "all resident"
    assert m.resident_peak_byte == pytest.approx(m.weights_byte + max(c.activation_byte for c in m.components))
    d = m.to_dict()
    assert d["pipeline_fit"] == "all resident" and all(c["fits"] for c in d["components"])
    assert all(c["activation_is_estimate"] for c in d["components"])


def test_quantisation_shrinks_weights_not_activations():
    s16 = memory_profile(make_setting("sd3.5-large", precision="bf16"))
    s4 = memory_profile(make_setting("sd3.5-large", precision="nf4"))
    s32 = memory_profile(make_setting("sd3.5-large", precision="fp32"))
    assert s32.weights_byte == pytest.approx(2 * s16.weights_byte)
    assert 0.25 * s16.weights_byte < s4.weights_byte < 0.4 * s16.weights_byte     # convs/norms/embeddings stay bf16
    a16 = {c.component: c.activation_byte for c in s16.components}
    assert {c.component: c.activation_byte for c in s4.components} == a16
    assert {c.component: c.activation_byte for c in s32.components} == pytest.approx(
        {k: 2 * v for k, v in a16.items()})


def test_fit_verdicts():
    # SD3.5-large in bf16 (about 25.6 GiB of weights) does not sit on a 24 GB card at once
    m = memory_profile(make_setting("sd3.5-large"), gpu="rtx-4090")
    assert 24 * GiB < m.weights_byte + RUNTIME_OVERHEAD_BYTE and m.pipeline_fit() == "with model CPU offload"
    assert memory_profile(make_setting("sd3.5-large", precision="nf4"), gpu="rtx-4090").pipeline_fit() == "all resident"
    assert memory_profile(make_setting("sd3.5-large", precision="fp32"), gpu="t4").pipeline_fit() == "does not fit"
    assert memory_profile(make_setting("sd2.1")).pipeline_fit() is None                 # no GPU: no verdict


def test_activations_grow_with_the_setting():
    a = {c.component: c.activation_byte for c in memory_profile(make_setting("audioldm2", seconds=10)).components}
    b = {c.component: c.activation_byte for c in memory_profile(make_setting("audioldm2", seconds=80)).components}
    for name in ("unet", "vae", "vocoder"):
        assert b[name] == pytest.approx(8 * a[name], rel=0.05)                     # linear in the clip length
    assert b["text_encoder"] == a["text_encoder"]
    two = {c.component: c.activation_byte for c in
           memory_profile(make_setting("audioldm2", seconds=10, batch_size=2)).components}
    assert two["unet"] == pytest.approx(2 * a["unet"])


@pytest.mark.parametrize("model", ["sdxl", "wan2.1", "audioldm2", "flux-dev"])
def test_batch_counts_against_memory(model):
    """Every activation scales with the samples of its call (the batch; outputs per prompt for all but
    the text encoders), the weights do not, and a large enough batch stops fitting."""
    one = memory_profile(make_setting(model), gpu="h100")
    four = memory_profile(make_setting(model, batch_size=2, outputs_per_prompt=2), gpu="h100")
    assert four.weights_byte == one.weights_byte
    for a, b in zip(one.components, four.components):
        scale = 2 if a.role == "text_encoder" else 4
        assert b.samples_per_call == scale * a.samples_per_call, (model, a.component)
        assert b.activation_byte == pytest.approx(scale * a.activation_byte, rel=1e-6), (model, a.component)
    assert four.resident_peak_byte > one.resident_peak_byte
    batch = 1
    while memory_profile(make_setting(model, batch_size=batch), gpu="h100").pipeline_fit() == "all resident":
        batch *= 4
        assert batch < 10 ** 7, "activations must grow with the batch"
    assert memory_profile(make_setting(model, batch_size=batch), gpu="h100").pipeline_fit() != "all resident"


@pytest.mark.parametrize("model,component,kw", [
    ("sd2.1", "vae", {"res": "640x896"}),               # not a design point
    pytest.param("audioldm2", "unet", {"seconds": 33.3}, marks=pytest.mark.slow),  # the fast lane traces the VAE
])
def test_fit_matches_a_fresh_trace(model, component, kw):
    pytest.importorskip("diffusers")
    spec = resolve_model(model)
    s = make_setting(spec, steps=1, guidance=1.0, **kw)
    call = next(c for c in component_calls(spec, s) if c.component == component)
    traced = trace_peak_elements(spec, call)["peak_elements"]
    m = next(c for c in memory_profile(s, spec=spec).components if c.component == component)
    assert m.activation_byte == pytest.approx(traced * 2, rel=0.02)                # bf16: 2 B per element


def test_traced_peak_counts_live_tensors_not_weights():
    torch = pytest.importorskip("torch")
    spec = resolve_model("sd2.1")
    call = next(c for c in component_calls(spec, make_setting(spec, res=512, steps=1)) if c.component == "vae")
    peak = trace_peak_elements(spec, call)
    # the decoder's output alone is 3 x 512 x 512; its largest level holds 128 x 512 x 512 per tensor
    assert peak["peak_elements"] > 2 * 128 * 512 * 512 and peak["input_elements"] == 4 * 64 * 64
    assert peak["peak_elements"] < 20 * 128 * 512 * 512
    assert torch is not None


def test_cli_profile_memory_columns_and_json(capsys):
    from scaling.app.cli import main

    assert main(["profile", "-m", "wan2.1", "--res", "480p", "--frames", "81", "--gpu", "h100"]) == 0
    out = capsys.readouterr().out
    for word in ("weights bf16", "activ. (est.)", "fits", "ESTIMATE", "fits all resident", "h100-sxm"):
        assert word in out
    assert main(["profile", "-m", "sd3.5-large", "--gpu", "rtx-4090", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["memory"]["pipeline_fit"] == "with model CPU offload"
    assert {c["component"] for c in data["memory"]["components"]} >= {"transformer", "vae", "text_encoder_3"}
    assert main(["profile", "-m", "sd2.1"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("component"))
    assert "weights bf16" in header and "fits" not in header                      # no GPU: no verdict column


def test_fmt_byte():
    assert fmt_byte(None) == "-" and fmt_byte(3 * GiB) == "3.00 GiB" and fmt_byte(5 * 2 ** 20) == "5 MiB"
    assert fmt_byte(2048) == "2 KiB" and fmt_byte(3 * GiB, rough=True) == "~3.00 GiB"


def test_cli_profile_says_compute_or_memory_bound_against_the_gpu_ridge_point(capsys):
    """Wan2.1's transformer (814 FLOP/B) is compute-bound on an H100 at bf16 (ridge 989.5 TFLOP/s / 3.35 TB/s =
    295 FLOP/B), its VAE decode (174 FLOP/B) memory-bound; without --gpu there is no verdict."""
    from scaling.app.cli import main

    assert main(["profile", "-m", "wan2.1", "--res", "480p", "--frames", "81", "--gpu", "h100"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if "bytes/pass" in line)
    assert "bound on h100-sxm" in header
    body = lines[lines.index(header) + 2:]
    body = body[:body.index("")]
    row = {line.split()[0]: line.split()[-1] for line in body}
    assert row == {"text_encoder": "memory", "transformer": "compute", "vae": "memory"}
    assert "peak / bandwidth = 295 FLOP/B" in out
    assert main(["profile", "-m", "wan2.1"]) == 0
    assert "bound on" not in capsys.readouterr().out
