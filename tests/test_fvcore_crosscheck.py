"""fvcore as a second opinion on linear and convolution layers (it counts no attention).

fvcore counts one multiply-add as one "flop"; our convention is 2 FLOP per multiply-add.
On a small UNet, the linear + conv FLOPs of both counters agree to 0.1% once the convention
is accounted for; attention is where they differ (fvcore skips it).
"""

import pytest

torch = pytest.importorskip("torch")
fvcore_nn = pytest.importorskip("fvcore.nn")


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ).eval()


def test_fvcore_agrees_with_flop_counter_on_linear_and_conv():
    from torch.utils.flop_counter import FlopCounterMode

    unet = _tiny_unet()
    x = torch.randn(1, 4, 16, 16)
    t = torch.tensor([10])
    enc = torch.randn(1, 7, 32)

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(x, t, enc)
    ours = {str(k): float(v) for k, v in counter.get_flop_counts()["Global"].items()}
    ours_linear_conv = ours.get("aten.convolution", 0) + ours.get("aten.addmm", 0) + ours.get("aten.mm", 0)

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, t, enc):
            return self.m(x, t, enc, return_dict=False)[0]

    analysis = fvcore_nn.FlopCountAnalysis(Wrapped(unet), (x, t, enc))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    fv_linear_conv = 2 * sum(by_op.get(k, 0) for k in ("conv", "linear", "addmm", "matmul"))
    assert ours_linear_conv > 0
    assert fv_linear_conv == pytest.approx(ours_linear_conv, rel=1e-3)


def test_attention_escapes_on_cpu_tensors_but_not_on_meta_and_the_guard_catches_it():
    """On real CPU tensors SDPA runs a fused kernel the counter does not know: attention = 0.
    On the meta device it decomposes into counted batched matmuls. The guard turns a zero
    attention count in a model that has attention modules into a ProfilerError."""
    from torch.utils.flop_counter import FlopCounterMode

    from profilers.flops.traced import _classify
    from scaling.errors import ProfilerError
    from scaling.registry import resolve_model
    from scaling.shapes import ComponentCall

    unet = _tiny_unet()
    cpu = FlopCounterMode(display=False)
    with torch.no_grad(), cpu:
        unet(torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 7, 32))
    assert "aten.bmm" not in {str(k) for k in cpu.get_flop_counts()["Global"]}

    meta = FlopCounterMode(display=False)
    with torch.no_grad(), torch.device("meta"):
        unet_meta = _tiny_unet().to("meta")
    with torch.no_grad(), torch.device("meta"), meta:
        unet_meta(torch.empty(1, 4, 16, 16), torch.empty(1), torch.empty(1, 7, 32))
    spec = resolve_model("sd2.1")
    call = ComponentCall("unet", "denoiser", {}, {}, ((),), 1, 1)
    counts = _classify(unet_meta, meta, spec, call)
    # self-attention 4*L^2*C plus cross-attention 4*L*T*C per transformer block: one in the
    # down block and two in the up block (layers_per_block + 1) at 16x16 (L=256, C=32), and one
    # in the mid block at 8x8 (L=64, C=64); T = 7 text tokens
    def block(L, C, T=7):
        return 4 * L * L * C + 4 * L * T * C

    assert counts.attention == pytest.approx(3 * block(256, 32) + block(64, 64), rel=1e-12)

    with pytest.raises(ProfilerError, match="0 attention FLOPs"):
        _classify(unet, cpu, spec, call)
