"""Precision: the one definition of the numeric formats the toolkit knows.

Everything about a precision lives here and only here: the names (:data:`PRECISIONS`), the one
name normaliser (:func:`normalize_precision`), bytes per weight and per activation value, which
stored peak of a GPU answers a precision name (:func:`peak_precision`), what a requested
precision runs at on a GPU (:func:`precision_plan`) and the dequantisation cost of weight-only
formats (:func:`dequant_cost`). ``scaling.hardware``, ``scaling.settings``, ``scaling.runs``,
``fits.features``, the law files and the profilers import these names; none defines its own.

::

    normalize_precision(" BF16 ")                      # -> "bf16"
    precision_plan("fp8", resolve_gpu("a100")).compute  # -> "bf16" (no fp8 tensor cores)
    dequant_cost(resolve_model("sd3.5-large"), "nf4", resolve_gpu("h100"), steps=28).energy_j

This module imports only ``scaling.errors`` (``scaling.hardware`` imports it, so it takes GPUs
and models as already-resolved objects and reads only their attributes: a GPU's ``key``,
``name``, ``architecture``, ``peak_flop_per_s``, ``memory_bandwidth_byte_per_s`` and ``tdp_w``;
a model's ``key``, ``architecture_key`` and ``components``).

FLOPs do not change with precision; energy does, through three things named explicitly per
(requested precision, GPU) pair (:func:`precision_plan`):

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

Two questions, two answers: :func:`peak_precision` (``GPUSpec.peak_for``) says which *stored*
rate a chip has for a precision name, e.g. the int8 tensor-core OP/s of a T4 for ``"int8"``;
:func:`precision_plan` says what a *setting* at that precision runs at, e.g. bf16 for ``int8``,
because the int8 the toolkit models is bitsandbytes' weight-only LLM.int8. Predictions and
fits use the plan.

Weights in memory (``profilers.flops.memory``): parameters of ``nn.Linear`` layers at
:data:`WEIGHT_BYTE` (block scales included) plus :data:`ROW_SCALE_BYTE` per output row; every
other parameter of a quantised model (convolutions, norms, embeddings) at
:data:`UNQUANTISED_BYTE`, as the quantisation back-ends quantise linear layers only.

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
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping, Protocol

from scaling.errors import InvalidSettingError

__all__ = [
    "ACTIVATION_BYTE",
    "BLOCK_SCALE_BYTE",
    "DEQUANT_COMPONENT_ROLES",
    "DequantCost",
    "PRECISIONS",
    "PrecisionPlan",
    "ROW_SCALE_BYTE",
    "SIXTEEN_BIT",
    "STORED_PRECISIONS",
    "UNQUANTISED_BYTE",
    "UNQUANTISED_PRECISIONS",
    "WEIGHT_BYTE",
    "WEIGHT_ONLY",
    "dequant_byte_per_weight",
    "dequant_cost",
    "energy_per_byte",
    "linear_params",
    "normalize_precision",
    "peak_precision",
    "precision_plan",
]

# -- the names ------------------------------------------------------------------------------------

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "nf4", "fp4")
"""Every precision a setting, a runs row or a hardware figure may name."""

STORED_PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
"""Precisions a GPU registry entry may store a dense peak for (no 4-bit peaks: see the module doc)."""

UNQUANTISED_PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")
"""Formats that keep every parameter at its own width (no quantisation back-end): what a
random-weights pipeline can be cast to."""

WEIGHT_ONLY: frozenset[str] = frozenset({"int8", "nf4", "fp4"})
"""Formats dequantised to 16-bit before each matmul (bitsandbytes int8, nf4, fp4)."""

SIXTEEN_BIT: tuple[str, ...] = ("bf16", "fp16")
"""The 16-bit compute formats, preferred first (bf16; fp16 on chips without bf16)."""

# -- bytes ----------------------------------------------------------------------------------------

ACTIVATION_BYTE: Mapping[str, float] = MappingProxyType(
    {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 2.0, "int8": 2.0, "nf4": 2.0, "fp4": 2.0})
"""Bytes per activation value moved between ops (the law's ``byte_per_value``): 4 for fp32 / tf32,
2 otherwise (weight-only formats compute with 16-bit activations; fp8 keeps them 16-bit between
ops: dynamic fp8 activation quantisation would halve only the GEMM inputs)."""

BLOCK_SCALE_BYTE: Mapping[str, float] = MappingProxyType({"nf4": 4.0 / 64, "fp4": 4.0 / 64})
"""Bytes of block scales per quantised weight: bitsandbytes 4-bit keeps one fp32 absmax per block of
64 weights (``bnb_4bit_use_double_quant`` would make it smaller; diffusers' default is off)."""

ROW_SCALE_BYTE: Mapping[str, float] = MappingProxyType({"fp8": 4.0, "int8": 4.0})
"""Bytes of scales per output row of each quantised linear layer: one fp32 scale (fp8, int8)."""

_PACKED_BYTE = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "nf4": 0.5, "fp4": 0.5}

WEIGHT_BYTE: Mapping[str, float] = MappingProxyType(
    {p: _PACKED_BYTE[p] + BLOCK_SCALE_BYTE.get(p, 0.0) for p in PRECISIONS})
"""Bytes per stored (linear) weight, block scales included (row scales are per row, not per weight:
:data:`ROW_SCALE_BYTE`): nf4 / fp4 0.5 + 4/64 = 0.5625."""

UNQUANTISED_BYTE = 2.0
"""Bytes of a 16-bit weight: what the matmul reads after dequantisation, the baseline of the
dequantisation traffic, and the width of every parameter the quantisation back-ends leave alone."""

DEQUANT_COMPONENT_ROLES: tuple[str, ...] = ("denoiser",)
"""Roles whose linear layers a quantisation config targets (see the module doc)."""

# Which stored peak answers a precision name, first present wins.
# - tf32 / bf16 / fp16 missing (Volta, Turing): the math runs without those tensor cores -> fp32.
# - fp8 / int8 missing: weights are dequantised and the matmul runs in 16-bit.
# - nf4 / fp4 are weight-only 4-bit formats: the matmul runs in bf16 (fp16 where the chip
#   has no bf16, which is the compute dtype one picks on Volta / Turing).
_PEAK_FALLBACK: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "fp32": ("fp32",),
    "tf32": ("tf32", "fp32"),
    "bf16": ("bf16", "fp32"),
    "fp16": ("fp16", "fp32"),
    "fp8": ("fp8", *SIXTEEN_BIT),
    "int8": ("int8", *SIXTEEN_BIT),
    "nf4": SIXTEEN_BIT,
    "fp4": SIXTEEN_BIT,
})

_WEIGHT_ONLY_LABEL = {"int8": "bitsandbytes LLM.int8", "nf4": "bitsandbytes 4-bit NF4",
                      "fp4": "bitsandbytes 4-bit FP4"}


class _GPU(Protocol):
    """What this module reads of a ``scaling.hardware.GPUSpec``."""

    key: str
    name: str
    architecture: str
    peak_flop_per_s: Mapping[str, float]
    memory_bandwidth_byte_per_s: float
    tdp_w: float


# -- names ----------------------------------------------------------------------------------------

def normalize_precision(precision: str) -> str:
    """The canonical name of ``precision``: case and surrounding spaces ignored (``" BF16 "`` -> ``"bf16"``).

    Raises
    ------
    InvalidSettingError
        If it is not one of :data:`PRECISIONS` (or not a string).
    """
    p = precision.strip().lower() if isinstance(precision, str) else None
    if p not in PRECISIONS:
        raise InvalidSettingError(f"`precision` {precision!r} is not a known precision: use one of "
                                  f"{', '.join(PRECISIONS)}")
    return p


def _require_gpu(gpu: Any, who: str) -> None:
    if isinstance(gpu, str) or not hasattr(gpu, "peak_flop_per_s"):
        raise TypeError(f"{who} needs a resolved GPU (scaling.hardware.resolve_gpu), got {gpu!r}")


# -- which chip runs which rate -------------------------------------------------------------------

def peak_precision(precision: str, gpu: _GPU) -> str:
    """The stored precision of ``gpu`` whose peak answers the name ``precision``.

    ``"fp8"`` on an A100 gives ``"bf16"``; ``"nf4"`` gives ``"bf16"`` everywhere it exists; ``"int8"``
    gives the chip's int8 tensor-core rate where it has one (what a *setting* at int8 runs at is
    :func:`precision_plan`'s answer: bf16, weight-only).

    Raises
    ------
    InvalidSettingError
        If ``precision`` is not one of :data:`PRECISIONS`.
    """
    wanted = normalize_precision(precision)
    for candidate in _PEAK_FALLBACK[wanted]:
        if candidate in gpu.peak_flop_per_s:
            return candidate
    # Unreachable for a validated registry entry (fp32 is always present).
    raise InvalidSettingError(
        f"`precision` {precision!r} has no peak on GPU {gpu.key!r}: it stores {', '.join(gpu.peak_flop_per_s)}"
    )


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


def dequant_byte_per_weight(precision: str) -> float:
    """Extra bytes per quantised weight per forward: ``packed + 2 (write bf16) + 2 (read bf16) - 2``.

    0 for every format that is not weight-only.
    """
    p = normalize_precision(precision)
    if p not in WEIGHT_ONLY:
        return 0.0
    return WEIGHT_BYTE[p] + 2 * UNQUANTISED_BYTE - UNQUANTISED_BYTE


def precision_plan(precision: str, gpu: _GPU) -> PrecisionPlan:
    """The explicit mapping of the module doc for ``precision`` on ``gpu`` (a resolved ``GPUSpec``).

    Raises
    ------
    InvalidSettingError
        Unknown precision.
    TypeError
        ``gpu`` is a name, not a resolved GPU (``scaling.hardware.resolve_gpu``).
    """
    _require_gpu(gpu, "precision_plan")
    p = normalize_precision(precision)
    notes: list[str] = []
    sixteen = next((q for q in SIXTEEN_BIT if q in gpu.peak_flop_per_s), None)
    if p in WEIGHT_ONLY:
        # the matmul runs in 16-bit; without 16-bit tensor cores it falls back like bf16 does
        compute = peak_precision(sixteen or "bf16", gpu)
        notes.append(f"{p}: {_WEIGHT_ONLY_LABEL[p]} weight-only quantisation: the matmuls run in {compute} with "
                     f"{compute} activations (same law figures as {compute}) plus the dequantisation traffic of the "
                     f"denoiser's linear weights ({dequant_byte_per_weight(p):g} extra bytes per weight per step)")
        if p == "int8":
            notes.append("int8: LLM.int8's int8 matmuls on non-outlier columns are not modelled as faster; it is "
                         "counted as weight-only dequantisation (an upper bound on its extra traffic)")
        if p == "fp4" and gpu.architecture == "blackwell":
            notes.append("fp4: native NVFP4 tensor cores are not modelled (no fp4 peak in the registry): counted as "
                         "bitsandbytes weight-only FP4")
    elif p == "fp8":
        if "fp8" in gpu.peak_flop_per_s:
            compute = "fp8"
            notes.append("fp8: matmuls at the fp8 tensor-core rate (W8A8, dynamic activation scaling); activations "
                         "stay 16-bit between ops")
        else:
            compute = peak_precision(sixteen or "bf16", gpu)
            notes.append(f"fp8: {gpu.name} ({gpu.architecture}) has no fp8 tensor cores: fp8 runs as {compute} "
                         f"(same energy as {compute}; fp8 storage saves memory only)")
    else:
        compute = peak_precision(p, gpu)
        if compute != p:
            notes.append(f"{p}: {gpu.name} has no {p} tensor cores: the matmuls run at its {compute} rate")
        if p == "fp32":
            notes.append("fp32: matmuls on the CUDA cores (PyTorch keeps TF32 off for matmuls by default); cuDNN "
                         "convolutions use TF32 by default, so a convolutional UNet may run faster than this")
    return PrecisionPlan(
        requested=p, gpu=gpu.key, compute=compute, peak_flop_per_s=float(gpu.peak_flop_per_s[compute]),
        activation_byte=ACTIVATION_BYTE[p], weight_byte=WEIGHT_BYTE[p], weight_only=p in WEIGHT_ONLY,
        dequant_byte_per_weight=dequant_byte_per_weight(p), notes=tuple(notes),
    )


# -- the dequantisation term ----------------------------------------------------------------------

def energy_per_byte(gpu: _GPU) -> float:
    """``TDP / memory bandwidth`` (J per byte): a memory-bound kernel at full bandwidth and board power."""
    _require_gpu(gpu, "energy_per_byte")
    return float(gpu.tdp_w) / float(gpu.memory_bandwidth_byte_per_s)


@cache
def _memory_table(architecture_key: str) -> dict | None:
    path = resources.files("scaling").joinpath("_registry", "memory", f"{architecture_key}.json")
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def linear_params(spec: Any, roles: tuple[str, ...] = DEQUANT_COMPONENT_ROLES) -> int | None:
    """Weights of the ``nn.Linear`` layers of the components of ``spec`` (a ``ModelSpec``) with ``roles``.

    Read from the memory tables; ``None`` if unknown.
    """
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


def dequant_cost(spec: Any, precision: str, gpu: _GPU, steps: int) -> DequantCost:
    """Dequantisation energy and time of ONE pipeline call (the module doc says how).

    ``spec`` is the resolved ``ModelSpec`` (or ``None``: unknown weights), ``gpu`` the resolved
    ``GPUSpec``, ``steps`` the number of denoising steps; the batch does not change it (one
    dequantisation per forward, whatever the batch, CFG batched). For a format that is not
    weight-only, or a model whose linear weights are unknown, the cost is 0 (the note says which).
    """
    plan = precision_plan(precision, gpu)
    epb = energy_per_byte(gpu)
    if not plan.weight_only:
        return DequantCost(plan.requested, gpu.key, None, 0, 0.0, epb, 0.0, 0.0)
    n = linear_params(spec) if spec is not None else None
    if n is None:
        return DequantCost(plan.requested, gpu.key, None, int(steps), 0.0, epb, 0.0, 0.0,
                           note=f"{plan.requested}: dequantisation cost not added (no linear-weight table for this "
                                "model)")
    byte = float(n) * plan.dequant_byte_per_weight * int(steps)
    energy = byte * epb
    time = byte / float(gpu.memory_bandwidth_byte_per_s)
    note = (f"{plan.requested}: + {energy:,.0f} J dequantisation ({n / 1e9:.2f} B linear weights x "
            f"{plan.dequant_byte_per_weight:g} B x {int(steps)} steps = {byte / 1e9:,.0f} GB at TDP/bandwidth = "
            f"{epb * 1e12:.0f} pJ/B, a roofline estimate, not fitted), added to the denoiser")
    return DequantCost(plan.requested, gpu.key, int(n), int(steps), byte, epb, energy, time, note=note)
