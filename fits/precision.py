"""What a requested precision means on a GPU: compute rate, bytes moved, dequantisation work.

FLOPs do not change with precision; energy does, through three things this module names
explicitly, per (requested precision, GPU) pair (:func:`precision_plan`):

1. the **compute precision**, whose dense peak (``scaling.hardware``) the matmuls run at, and
   that enters the law as ``peak_flop_per_s``;
2. the **activation bytes** per value moved between ops, that enters the law as
   ``byte_per_value`` (:data:`ACTIVATION_BYTE`);
3. for weight-only formats, the **dequantisation traffic**: extra memory bytes per quantised
   (``nn.Linear``) weight per denoiser forward, a separate energy term added at prediction time
   (:func:`dequant_cost`), not fitted.

The mapping
-----------

=========  ================================  ==========  ================  ==================
requested  compute precision (peak)          activation  weight bytes      dequant bytes per
                                             bytes       (linear layers)   weight, per forward
=========  ================================  ==========  ================  ==================
fp32       fp32 (CUDA cores; PyTorch leaves  4           4                 0
           TF32 off for matmuls by default)
tf32       tf32 (fp32 where the chip has no  4           4                 0
           TF32 tensor cores)
bf16/fp16  itself (fp32 on chips without it) 2           2                 0
fp8        fp8 on chips with fp8 tensor      2           1 (+ fp32 scale   0
           cores (Ada, Hopper, Blackwell);               per row)
           elsewhere bf16: it *runs as bf16*
           (a note says so)
int8       16-bit (bf16, fp16 without bf16)  2           1 (+ row scale)   1 + 2 + 2 - 2 = 3
nf4 / fp4  16-bit (bf16, fp16 without bf16)  2           0.5 + 4/64        0.5625 + 2 + 2 - 2
                                                         (absmax)          = 2.5625
=========  ================================  ==========  ================  ==================

Why:

- ``int8``, ``nf4`` and ``fp4`` are the bitsandbytes formats diffusers uses
  (``BitsAndBytesConfig``: LLM.int8 and 4-bit NF4/FP4, block size 64, one fp32 absmax per block,
  no double quantisation by default). They are *weight-only* here: the matmul runs in 16-bit
  with 16-bit activations, so the law sees the bf16 (fp16) figures; each forward pass of a
  quantised layer first reads the packed weights, writes them out as bf16 and reads them back
  for the matmul, where bf16 weights would have been read once: extra traffic per weight =
  ``packed + 2 + 2 - 2`` bytes. LLM.int8 in fact runs int8 matmuls on the non-outlier columns
  (activations quantised per row) and 16-bit matmuls on the outlier columns; it is modelled
  with the same weight-only rule (an upper bound on its extra traffic, and no int8 compute
  speed-up), as the published 8-bit runs were no faster than fp16.
- ``fp8`` computes at the fp8 rate (W8A8 with dynamic activation scaling, as torchao /
  TensorRT run it) only where the chip has fp8 tensor cores; activations stay bf16 between
  ops (the cast into each fp8 matmul and the halved weight reads are not modelled: both are
  small against the matmuls). On an Ampere or older chip fp8 has no kernels: it runs as bf16
  (same energy as bf16) and the plan carries a note.
- ``fp32``: PyTorch's default ``torch.backends.cuda.matmul.allow_tf32 = False`` keeps fp32
  matmuls on the CUDA cores (the registry's fp32 peak); cuDNN convolutions do use TF32 by
  default, so a convolutional UNet in fp32 may run somewhat faster than this assumes (a note).
- Native 4-bit tensor-core formats (Blackwell NVFP4) are not modelled: the registry stores no
  4-bit peak, so ``fp4`` is always bitsandbytes' weight-only FP4.

Dequantisation energy
---------------------

``E_dequant = bytes x energy per byte``, bytes = linear weights of the denoiser x dequant bytes
per weight x denoiser forwards (one per step: diffusers concatenates the CFG branches into one
batch, so the weights are dequantised once per step whatever the batch). Energy per byte is
the GPU's ``TDP / memory bandwidth`` from the registry: a memory-bound kernel streaming at
full bandwidth while drawing board power. It is an *upper-bound style roofline estimate*, not
fitted: no public measurement identifies it (the only quantised runs, leybzon's SD3.5-large,
have no GPU named and CPU offload on). Time: ``bytes / bandwidth``. Which components are
quantised: the denoiser only (what the published runs and diffusers' examples quantise; text
encoders and VAE stay 16-bit); its linear-weight count comes from the memory tables
``scaling/_registry/memory/<architecture>.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Mapping

from scaling.errors import InvalidSettingError
from scaling.hardware import PRECISIONS, GPUSpec, resolve_gpu

__all__ = [
    "ACTIVATION_BYTE",
    "DEQUANT_COMPONENT_ROLES",
    "DequantCost",
    "PrecisionPlan",
    "UNQUANTISED_BYTE",
    "WEIGHT_BYTE",
    "WEIGHT_ONLY",
    "dequant_byte_per_weight",
    "dequant_cost",
    "energy_per_byte",
    "linear_params",
    "precision_plan",
]

#: Bytes per activation value moved between ops (the law's ``byte_per_value``).
ACTIVATION_BYTE: Mapping[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 2.0, "int8": 2.0, "nf4": 2.0, "fp4": 2.0,
}

#: Bytes per stored linear weight, block scales included (row scales are per row, not per weight).
WEIGHT_BYTE: Mapping[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
    "nf4": 0.5 + 4.0 / 64, "fp4": 0.5 + 4.0 / 64,
}

#: Formats dequantised to 16-bit before each matmul (bitsandbytes).
WEIGHT_ONLY: frozenset[str] = frozenset({"int8", "nf4", "fp4"})

#: Bytes of a 16-bit weight: what the matmul reads after dequantisation, and the baseline.
UNQUANTISED_BYTE = 2.0

#: Roles whose linear layers a quantisation config targets (see the module doc).
DEQUANT_COMPONENT_ROLES: tuple[str, ...] = ("denoiser",)

_16BIT = ("bf16", "fp16")


@dataclass(frozen=True)
class PrecisionPlan:
    """How ``requested`` runs on ``gpu`` (see the module doc for the rules).

    Attributes
    ----------
    requested : str
        The precision asked for (``nf4``, ``fp8``, ...).
    gpu : str
        GPU registry key.
    compute : str
        The stored precision whose peak the matmuls run at (``bf16`` for nf4; ``fp8`` for fp8 on
        an H100, ``bf16`` on an A100).
    peak_flop_per_s : float
        That peak (dense FLOP/s): the law's ``peak_flop_per_s``.
    activation_byte : float
        Bytes per activation value: the law's ``byte_per_value``.
    weight_byte : float
        Bytes per stored linear weight (block scales included).
    weight_only : bool
        Weights are dequantised to 16-bit before every matmul.
    dequant_byte_per_weight : float
        Extra memory traffic per quantised weight per forward (0 unless weight-only).
    notes : tuple of str
        What the plan assumes that a user should know (fp8 running as bf16, ...).
    """

    requested: str
    gpu: str
    compute: str
    peak_flop_per_s: float
    activation_byte: float
    weight_byte: float
    weight_only: bool
    dequant_byte_per_weight: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _norm(precision: str) -> str:
    p = precision.strip().lower() if isinstance(precision, str) else None
    if p not in PRECISIONS:
        raise InvalidSettingError(f"`precision` {precision!r} is not a known precision: use one of "
                                  f"{', '.join(PRECISIONS)}")
    return p


def dequant_byte_per_weight(precision: str) -> float:
    """Extra bytes per quantised weight per forward: ``packed + 2 (write bf16) + 2 (read bf16) - 2``.

    0 for every format that is not weight-only.
    """
    p = _norm(precision)
    if p not in WEIGHT_ONLY:
        return 0.0
    return WEIGHT_BYTE[p] + 2 * UNQUANTISED_BYTE - UNQUANTISED_BYTE


def precision_plan(precision: str, gpu: str | GPUSpec) -> PrecisionPlan:
    """The explicit mapping of the module doc for ``precision`` on ``gpu``.

    Raises
    ------
    InvalidSettingError
        Unknown precision.
    UnknownGPUError
        Unknown GPU.
    """
    spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)
    return _plan(spec.key, _norm(precision))


@lru_cache(maxsize=256)
def _plan(key: str, p: str) -> PrecisionPlan:
    spec = resolve_gpu(key)
    notes: list[str] = []
    sixteen = next((q for q in _16BIT if q in spec.peak_flop_per_s), None)
    if p in WEIGHT_ONLY:
        # the matmul runs in 16-bit; without 16-bit tensor cores it falls back like bf16 does
        compute = spec.peak_precision_for(sixteen or "bf16")
        label = {"int8": "bitsandbytes LLM.int8", "nf4": "bitsandbytes 4-bit NF4",
                 "fp4": "bitsandbytes 4-bit FP4"}[p]
        notes.append(f"{p}: {label} weight-only quantisation: the matmuls run in {compute} with {compute} "
                     f"activations (same law figures as {compute}) plus the dequantisation traffic of the "
                     f"denoiser's linear weights ({dequant_byte_per_weight(p):g} extra bytes per weight per step)")
        if p == "int8":
            notes.append("int8: LLM.int8's int8 matmuls on non-outlier columns are not modelled as faster; it is "
                         "counted as weight-only dequantisation (an upper bound on its extra traffic)")
        if p == "fp4" and spec.architecture == "blackwell":
            notes.append("fp4: native NVFP4 tensor cores are not modelled (no fp4 peak in the registry): counted as "
                         "bitsandbytes weight-only FP4")
    elif p == "fp8":
        if "fp8" in spec.peak_flop_per_s:
            compute = "fp8"
            notes.append("fp8: matmuls at the fp8 tensor-core rate (W8A8, dynamic activation scaling); activations "
                         "stay 16-bit between ops")
        else:
            compute = spec.peak_precision_for(sixteen or "bf16")
            notes.append(f"fp8: {spec.name} ({spec.architecture}) has no fp8 tensor cores: fp8 runs as {compute} "
                         f"(same energy as {compute}; fp8 storage saves memory only)")
    else:
        compute = spec.peak_precision_for(p)
        if compute != p:
            notes.append(f"{p}: {spec.name} has no {p} tensor cores: the matmuls run at its {compute} rate")
        if p == "fp32":
            notes.append("fp32: matmuls on the CUDA cores (PyTorch keeps TF32 off for matmuls by default); cuDNN "
                         "convolutions use TF32 by default, so a convolutional UNet may run faster than this")
    return PrecisionPlan(
        requested=p, gpu=spec.key, compute=compute, peak_flop_per_s=float(spec.peak_flop_per_s[compute]),
        activation_byte=ACTIVATION_BYTE[p], weight_byte=WEIGHT_BYTE[p], weight_only=p in WEIGHT_ONLY,
        dequant_byte_per_weight=dequant_byte_per_weight(p), notes=tuple(notes),
    )


def energy_per_byte(gpu: str | GPUSpec) -> float:
    """``TDP / memory bandwidth`` (J per byte): a memory-bound kernel at full bandwidth and board power."""
    spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)
    return float(spec.tdp_w) / float(spec.memory_bandwidth_byte_per_s)


@cache
def _memory_table(architecture_key: str) -> dict | None:
    path = resources.files("scaling").joinpath("_registry", "memory", f"{architecture_key}.json")
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def linear_params(spec, roles: tuple[str, ...] = DEQUANT_COMPONENT_ROLES) -> int | None:
    """Weights of the ``nn.Linear`` layers of the components with ``roles`` (memory tables); None if unknown."""
    table = _memory_table(getattr(spec, "architecture_key", "") or getattr(spec, "key", ""))
    if not table:
        return None
    comps = table.get("components", {})
    total = 0
    found = False
    for name, comp in spec.components.items():
        if comp.role in roles and name in comps and comps[name].get("linear_params") is not None:
            total += int(comps[name]["linear_params"])
            found = True
    return total if found else None


@dataclass(frozen=True)
class DequantCost:
    """The dequantisation term of one pipeline call (zero for formats that are not weight-only)."""

    precision: str
    gpu: str
    linear_params: int | None        # quantised weights (denoiser linear layers)
    forwards: int                    # denoiser forwards that dequantise (one per step)
    byte: float                      # extra memory traffic of the call
    energy_per_byte_j: float
    energy_j: float
    time_s: float
    note: str | None = None


def dequant_cost(spec, precision: str, gpu: str | GPUSpec, steps: int) -> DequantCost:
    """Dequantisation energy and time of ONE pipeline call (the module doc says how).

    ``steps`` is the number of denoising steps; the batch does not change it (one dequantisation
    per forward, whatever the batch, CFG batched). For a format that is not weight-only, or a
    model whose linear weights are unknown, the cost is 0 (the note says which).
    """
    g = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)
    plan = precision_plan(precision, g)
    epb = energy_per_byte(g)
    if not plan.weight_only:
        return DequantCost(plan.requested, g.key, None, 0, 0.0, epb, 0.0, 0.0)
    n = linear_params(spec) if spec is not None else None
    if n is None:
        return DequantCost(plan.requested, g.key, None, int(steps), 0.0, epb, 0.0, 0.0,
                           note=f"{plan.requested}: dequantisation cost not added (no linear-weight table for this "
                                "model)")
    byte = float(n) * plan.dequant_byte_per_weight * int(steps)
    energy = byte * epb
    time = byte / float(g.memory_bandwidth_byte_per_s)
    note = (f"{plan.requested}: + {energy:,.0f} J dequantisation ({n / 1e9:.2f} B linear weights x "
            f"{plan.dequant_byte_per_weight:g} B x {int(steps)} steps = {byte / 1e9:,.0f} GB at TDP/bandwidth = "
            f"{epb * 1e12:.0f} pJ/B, a roofline estimate, not fitted), added to the denoiser")
    return DequantCost(plan.requested, g.key, int(n), int(steps), byte, epb, energy, time, note=note)
