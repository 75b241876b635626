"""Peak GPU memory per component of one generation: weights at the precision + an activation estimate.

Torch-free at predict time: it reads the closed-form FLOP tables' ``params`` and the small
memory tables ``scaling/_registry/memory/<key>.json`` built once with torch
(``python -m profilers.flops.memory [MODEL_KEY ...]``).

Weights (``weights_byte``)
    parameters x bytes per parameter at the setting's precision:

    - ``fp32``, ``tf32``: 4 B; ``bf16``, ``fp16``: 2 B (every parameter);
    - ``fp8``, ``int8`` (weight quantisation as diffusers runs it through torchao /
      bitsandbytes / quanto): the weights of ``nn.Linear`` layers at 1 B plus one fp32 scale per
      output row (4 B x rows); every other parameter (convolutions, norms, embeddings) stays at
      2 B (bf16), because these back-ends quantise linear layers only;
    - ``nf4``, ``fp4`` (bitsandbytes 4-bit, block size 64): linear weights at 0.5 B plus one fp32
      absmax per block of 64 (0.0625 B), i.e. 0.5625 B per weight (``bnb_4bit_use_double_quant``
      would make it 0.516 B; diffusers' default is off); other parameters at 2 B.

    The split (linear weights, their rows, the rest) is recorded per component in the memory
    table; without one, every parameter is counted at the precision's bytes (a lower bound for the
    quantised precisions). The byte figures are :mod:`scaling.precision`'s tables.

Activations (``activation_byte``, an ESTIMATE)
    the peak of the live activation tensors of ONE call in eager PyTorch inference, traced once
    per component on the meta device with a dispatch mode that adds every tensor an op creates and
    removes it when its last Python reference dies (the call's inputs and outputs included;
    weights excluded), with attention run as a fused kernel (flash / memory-efficient SDPA: the
    output is allocated, the ``L x L`` score matrix is not). The peak, in elements per sample, is
    fitted at a few settings as a polynomial in the component's closed-form features with powers
    <= 1 (``1, T`` / ``1, P, P1, P2, P3`` / ``1, P, f, f*P``); ``max_rel_residual`` says how well
    it fits. Bytes = elements x activation bytes (4 for fp32/tf32, 2 otherwise: weight-only
    quantisation computes in bf16) x samples per call (the batch; a denoiser under CFG runs the
    conditional and unconditional branches as one batch of 2, as most diffusers pipelines do).
    Not included: the allocator's caching and fragmentation, kernel workspaces (cuDNN, cuBLAS),
    the CUDA context: ``RUNTIME_OVERHEAD_BYTE`` (1 GiB, an assumption) is added when deciding
    whether something fits.

Fit verdicts (with a GPU)
    a component fits when weights + activations + overhead <= GPU memory; the pipeline fits
    "all resident" (``pipe.to("cuda")``) when the sum of all weights + the largest activation +
    overhead fits, else "with model CPU offload" (``enable_model_cpu_offload``) when the largest
    single component fits, else not.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from profilers.flops.build_closed_form import design_settings
from profilers.flops.profile import parameter_counts
from scaling.errors import ProfilerError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.precision import (
    ACTIVATION_BYTE,
    ROW_SCALE_BYTE,
    UNQUANTISED_BYTE,
    UNQUANTISED_PRECISIONS,
    WEIGHT_BYTE,
    normalize_precision,
)
from scaling.registry import list_models, resolve_model
from scaling.shapes import component_calls

GiB = 2 ** 30
RUNTIME_OVERHEAD_BYTE = 1 * GiB


# -- tables ---------------------------------------------------------------------------------------

@cache
def _memory_table(key: str) -> dict[str, Any] | None:
    path = resources.files("scaling").joinpath("_registry", "memory", f"{key}.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _params(spec) -> dict[str, int]:
    try:
        return parameter_counts(spec)
    except ProfilerError:
        return {}


def weights_byte(params: int, precision: str, linear_params: int | None = None, linear_rows: int = 0) -> float:
    """Bytes of ``params`` parameters at ``precision`` (see the module docstring for the rule).

    The bytes per weight, per block and row scale, and of the parameters left unquantised are
    :mod:`scaling.precision`'s :data:`~scaling.precision.WEIGHT_BYTE` (block scales included),
    :data:`~scaling.precision.ROW_SCALE_BYTE` and :data:`~scaling.precision.UNQUANTISED_BYTE`.

    Raises
    ------
    InvalidSettingError
        If ``precision`` is not a known precision.
    """
    precision = normalize_precision(precision)
    b = WEIGHT_BYTE[precision]
    if precision in UNQUANTISED_PRECISIONS or linear_params is None:
        # unquantised, or no split recorded: every parameter at the precision's width
        return params * b
    quantised = linear_params * b + linear_rows * ROW_SCALE_BYTE.get(precision, 0.0)
    return quantised + (params - linear_params) * UNQUANTISED_BYTE


def _eval_activation(entry: Mapping[str, Any], features: Mapping[str, float]) -> float:
    total = 0.0
    for mono, c in zip(entry["basis"], entry["coef"]):
        v = 1.0
        for name, power in mono:
            v *= float(features[name]) ** power
        total += c * v
    return max(total, 0.0)


@dataclass(frozen=True)
class ComponentMemory:
    component: str
    role: str
    params: int | None
    weights_byte: float | None
    activation_byte: float | None        # estimate, peak of the largest call of this component
    samples_per_call: int
    activation_source: str                # "traced peak (fitted)" | "no table"
    activation_fit_residual: float | None = None  # worst relative miss of the fit at its traced points

    @property
    def peak_byte(self) -> float | None:
        if self.weights_byte is None:
            return None
        return self.weights_byte + (self.activation_byte or 0.0)

    def to_dict(self) -> dict:
        return {"component": self.component, "role": self.role, "params": self.params,
                "weights_byte": self.weights_byte, "activation_byte": self.activation_byte,
                "activation_is_estimate": True, "peak_byte": self.peak_byte,
                "samples_per_call": self.samples_per_call, "activation_source": self.activation_source,
                "activation_fit_residual": self.activation_fit_residual}


@dataclass(frozen=True)
class MemoryProfile:
    model_id: str
    precision: str
    components: tuple[ComponentMemory, ...]
    gpu: str | None = None
    gpu_memory_byte: int | None = None
    overhead_byte: int = RUNTIME_OVERHEAD_BYTE
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def weights_byte(self) -> float:
        return sum(c.weights_byte or 0.0 for c in self.components)

    @property
    def resident_peak_byte(self) -> float:
        """All components on the GPU at once (``pipe.to("cuda")``): all weights + the largest activation."""
        return self.weights_byte + max((c.activation_byte or 0.0 for c in self.components), default=0.0)

    @property
    def offload_peak_byte(self) -> float:
        """Model CPU offload: one component on the GPU at a time."""
        return max((c.peak_byte or 0.0 for c in self.components), default=0.0)

    def component_fits(self, c: ComponentMemory) -> bool | None:
        if self.gpu_memory_byte is None or c.peak_byte is None:
            return None
        return c.peak_byte + self.overhead_byte <= self.gpu_memory_byte

    def pipeline_fit(self) -> str | None:
        """'all resident' | 'with model CPU offload' | 'does not fit' (None without a GPU)."""
        if self.gpu_memory_byte is None:
            return None
        if self.resident_peak_byte + self.overhead_byte <= self.gpu_memory_byte:
            return "all resident"
        if self.offload_peak_byte + self.overhead_byte <= self.gpu_memory_byte:
            return "with model CPU offload"
        return "does not fit"

    def to_dict(self) -> dict:
        return {
            "precision": self.precision, "gpu": self.gpu, "gpu_memory_byte": self.gpu_memory_byte,
            "overhead_byte": self.overhead_byte, "weights_byte": self.weights_byte,
            "resident_peak_byte": self.resident_peak_byte, "offload_peak_byte": self.offload_peak_byte,
            "pipeline_fit": self.pipeline_fit(),
            "components": [dict(c.to_dict(), fits=self.component_fits(c)) for c in self.components],
            "method": "weights: params x bytes per parameter at the precision (+ quantisation scales); activations: "
                      "ESTIMATE, peak live tensors of one call traced on the meta device with fused attention, "
                      "fitted per component (profilers/flops/memory.py)",
            "notes": list(self.notes),
        }


def memory_profile(setting, spec=None, gpu: str | GPUSpec | None = None) -> MemoryProfile:
    """Weights and activation estimate per component of one generation at ``setting``; ``gpu`` (a
    name, or a resolved :class:`~scaling.hardware.GPUSpec`, which is not resolved again) adds the
    fit verdict."""
    spec = spec or resolve_model(setting.model)
    precision = setting.precision
    params = _params(spec)
    mem = _memory_table(spec.architecture_key) or {}
    mcomps = mem.get("components", {})
    act_b = ACTIVATION_BYTE[precision]
    per_comp: dict[str, dict[str, Any]] = {}
    notes = []
    for call in component_calls(spec, setting):
        d = per_comp.setdefault(call.component, {"role": call.role, "act": None, "samples": call.batch, "resid": None})
        samples = call.batch * (2 if call.role == "denoiser" and setting.cfg else 1)
        entry = mcomps.get(call.component, {}).get("activation", {}).get(call.key)
        if entry is None:
            continue
        b = _eval_activation(entry, call.features) * samples * act_b
        if d["act"] is None or b > d["act"]:
            d["act"], d["samples"], d["resid"] = b, samples, entry.get("max_rel_residual")
    out = []
    for name, d in per_comp.items():
        p = params.get(name)
        split = mcomps.get(name, {})
        w = None if p is None else weights_byte(p, precision, split.get("linear_params"), split.get("linear_rows", 0))
        out.append(ComponentMemory(component=name, role=d["role"], params=p, weights_byte=w,
                                   activation_byte=d["act"], samples_per_call=d["samples"],
                                   activation_source="traced peak (fitted)" if d["act"] is not None else "no table",
                                   activation_fit_residual=d["resid"]))
    if not mem:
        notes.append(f"no memory table for {spec.key}: activations not estimated, quantised weights counted without "
                     "the linear/other split")
    gpu_name = gpu if gpu is not None else getattr(setting, "gpu", None)
    gpu_mem = None
    if gpu_name:
        g = gpu_name if isinstance(gpu_name, GPUSpec) else resolve_gpu(gpu_name)
        gpu_name, gpu_mem = g.key, g.memory_byte
    return MemoryProfile(model_id=spec.id, precision=precision, components=tuple(out), gpu=gpu_name,
                         gpu_memory_byte=gpu_mem, notes=tuple(notes))


ROUGH_FIT = 0.05
"""An activation fit that misses one of its traced points by more than this is printed with ``~``
(video VAEs that decode in chunks or tiles: their peak is set by the largest chunk, a maximum
that a polynomial only approximates)."""


def fmt_byte(x: float | None, rough: bool = False) -> str:
    if x is None:
        return "-"
    mark = "~" if rough else ""
    if x >= GiB:
        return f"{mark}{x / GiB:.2f} GiB"
    if x >= 2 ** 20:
        return f"{mark}{x / 2 ** 20:.0f} MiB"
    return f"{mark}{x / 2 ** 10:.0f} KiB"


def is_rough(c: ComponentMemory) -> bool:
    return c.activation_fit_residual is not None and c.activation_fit_residual > ROUGH_FIT


# -- building the tables (torch) ---------------------------------------------------------------------

OUT_DIR = Path(__file__).resolve().parents[2] / "scaling" / "_registry" / "memory"


def trace_peak_elements(spec, call) -> dict[str, float]:
    """Peak live activation elements of ONE call for ONE sample (meta device, fused attention)."""
    import weakref

    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from profilers.flops import traced

    module = traced._module_for(spec, call)
    build = traced.BUILDERS.get(type(module).__name__)
    if build is None:
        raise ProfilerError(f"{spec.id}: no input builder for {call.component}")
    with torch.device("meta"):
        fn, kwargs = build(spec, call, module)
    inputs = sum(t.numel() for t in tree_flatten(kwargs)[0] if isinstance(t, torch.Tensor))
    # storages that exist before the call (weights, buffers, inputs): views of them are not new memory
    known = {t.untyped_storage()._cdata for t in list(module.parameters()) + list(module.buffers())}
    known |= {t.untyped_storage()._cdata for t in tree_flatten(kwargs)[0] if isinstance(t, torch.Tensor)}

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.size: dict[int, int] = {}
            self.refs: dict[int, int] = {}
            self.cur = inputs
            self.peak = inputs

        def _release(self, key):
            self.refs[key] -= 1
            if self.refs[key] == 0:
                self.cur -= self.size.pop(key)
                del self.refs[key]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    key = st._cdata
                    if key in known:
                        continue
                    if key not in self.refs:
                        n = st.nbytes() // max(t.element_size(), 1)
                        self.size[key], self.refs[key] = n, 0
                        self.cur += n
                        self.peak = max(self.peak, self.cur)
                    self.refs[key] += 1
                    weakref.finalize(t, self._release, key)
            return out

    class FusedSDPA(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:
                a = list(args)
                q, _k, v = (a.pop(0) if a else kwargs.pop(n) for n in ("query", "key", "value"))
                return q.new_empty(q.shape[:-1] + (v.shape[-1],))
            return func(*args, **kwargs)

    live = Live()
    with torch.no_grad(), torch.device("meta"), FusedSDPA(), live:
        res = fn(**kwargs)
        del res
    return {"peak_elements": float(live.peak), "input_elements": float(inputs)}


def _linear_split(spec, name: str) -> tuple[int, int]:
    import torch

    from profilers.flops.traced import build_component

    module = build_component(spec, name)
    lin = rows = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            lin += m.weight.numel()
            rows += m.weight.shape[0]
    return lin, rows


def _design_points(spec, max_extra: int = 3):
    points: dict[str, dict[tuple, Any]] = {}
    for s in design_settings(spec):
        for c in component_calls(spec, s):
            points.setdefault(c.key, {}).setdefault(tuple(sorted(c.features.items())), c)
    out = {}
    for key, pts in points.items():
        calls = sorted(pts.values(), key=lambda c: sum(c.features.values()))
        basis = _linear_basis(calls[0].basis)
        n = min(len(calls), len(basis) + max_extra)
        if n == len(calls):
            out[key] = calls
        else:  # spread over the range, both ends included
            idx = sorted({round(i * (len(calls) - 1) / (n - 1)) for i in range(n)})
            out[key] = [calls[i] for i in idx]
    return out


def _linear_basis(basis) -> list:
    return [list(map(list, m)) for m in basis if all(p <= 1 for _, p in m)]


def build_memory_table(spec, verbose: bool = True) -> dict[str, Any]:
    import numpy as np

    comps: dict[str, Any] = {}
    for name in spec.components:
        lin, rows = _linear_split(spec, name)
        comps[name] = {"linear_params": lin, "linear_rows": rows, "activation": {}}
    for key, calls in _design_points(spec).items():
        basis = _linear_basis(calls[0].basis)
        ys = []
        for c in calls:
            ys.append(trace_peak_elements(spec, c)["peak_elements"])
            if verbose:
                print(f"  {spec.key} {key} {dict(c.features)}: peak {ys[-1] / 1e6:.1f} M elements", file=sys.stderr)
        X = np.array([[np.prod([float(c.features[f]) ** p for f, p in m]) for m in basis] for c in calls])
        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        beta, *_ = np.linalg.lstsq(X / scale, np.array(ys), rcond=None)
        beta = beta / scale
        pred = X @ beta
        resid = float(np.max(np.abs(pred - ys) / np.maximum(np.abs(ys), 1.0)))
        comps[calls[0].component]["activation"][key] = {
            "basis": basis, "coef": [float(b) for b in beta], "unit": "elements per sample",
            "design": [dict(c.features) for c in calls], "traced": ys, "max_rel_residual": resid}
    import diffusers
    import torch
    import transformers

    return {"model": spec.key, "id": spec.id, "generated_by": "python -m profilers.flops.memory",
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__},
            "convention": "activation: peak live activation elements of one call for one sample (inputs and outputs "
                          "included, weights excluded, fused attention), polynomial in the closed-form features; "
                          "linear_params / linear_rows: weights and output rows of nn.Linear layers",
            "components": comps}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for key in argv or [s.key for s in list_models()]:
        spec = resolve_model(key)
        try:
            table = build_memory_table(spec)
        except (ProfilerError, NotImplementedError) as e:  # a model the tracer cannot build keeps no table
            print(f"{spec.key}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        (OUT_DIR / f"{spec.architecture_key}.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        worst = max((a["max_rel_residual"] for c in table["components"].values() for a in c["activation"].values()),
                    default=0.0)
        print(f"{spec.key}: worst activation fit residual {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
