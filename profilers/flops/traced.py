"""Traced FLOP and byte counts: real diffusers/transformers classes built on the meta device.

Each component is built from its registry config with its real class (no weights, no memory)
and called once with meta tensors of the shapes in a :class:`ComponentCall`;
:class:`profilers.flops.counting.OpCounter` counts the FLOPs (``torch.utils.flop_counter``'s
formulas: one multiply-add = 2 FLOP, the numbers ``FlopCounterMode`` gives) and the values each
op reads and writes (:func:`trace_call`; the fusion assumptions are in that module's doc).

Op classes:

- ``attention``: batched matmuls (QK^T and AV, bmm/baddbmm/SDPA) inside attention modules;
- ``linear``: mm/addmm (linear layers, projections, MLPs);
- ``conv``: convolutions (including transposed);
- ``other``: any other counted op (batched matmuls outside attention modules).
Element-wise work (norms, activations, softmax) is not counted, as in the Kaplan convention.

Guard: a component that contains attention modules but reports zero attention FLOPs raises
:class:`ProfilerError` (on real CPU tensors SDPA can silently drop out of the count).

Input builders, one per component class, live in ``_inputs_image.py``, ``_inputs_video.py`` and
``_inputs_audio.py``, each in a plain table ``BUILDERS`` (class name -> builder; families that
run a composed module, ``COMPOSERS``); :data:`BUILDERS` and :data:`COMPOSERS` here are the one
table of each, the shared builders included.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from profilers.flops import _inputs_audio, _inputs_image, _inputs_video
from profilers.flops.counting import BATCHED_OPS as _BATCHED_OPS
from profilers.flops.counting import CONV_OPS as _CONV_OPS
from profilers.flops.counting import LINEAR_OPS as _LINEAR_OPS
from profilers.flops.counting import count_run
from scaling.errors import AttentionNotCountedError, ProfilerError
from scaling.registry import ComponentSpec, ModelSpec
from scaling.shapes import ComponentCall

OP_CLASSES = ("attention", "linear", "conv", "other")
_ATTENTION_MODULE = re.compile(r"Attention|Attn")


@dataclass(frozen=True)
class OpCounts:
    attention: float = 0.0
    linear: float = 0.0
    conv: float = 0.0
    other: float = 0.0

    @property
    def total(self) -> float:
        return self.attention + self.linear + self.conv + self.other

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in OP_CLASSES}

    def scaled(self, factor: float) -> "OpCounts":
        return OpCounts(*(getattr(self, k) * factor for k in OP_CLASSES))

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(*(getattr(self, k) + getattr(other, k) for k in OP_CLASSES))


Builder = Callable[[ModelSpec, ComponentCall, torch.nn.Module], tuple[Callable[..., Any], dict[str, Any]]]
Composer = Callable[[Callable[[str], torch.nn.Module]], torch.nn.Module]

_MODULE_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def build_component(spec: ModelSpec, name: str) -> torch.nn.Module:
    """The component built from its config on the meta device (cached per process)."""
    key = (spec.architecture_key, name)
    if key not in _MODULE_CACHE:
        _MODULE_CACHE[key] = _build(spec, spec.components[name])
    return _MODULE_CACHE[key]


def _build(spec: ModelSpec, comp: ComponentSpec) -> torch.nn.Module:
    if comp.library not in ("diffusers", "transformers"):
        raise ProfilerError(f"{spec.id}: component {comp.name} has unknown library {comp.library!r}")
    return build_from_config(comp, "meta")


def build_from_config(comp: ComponentSpec, device: str) -> torch.nn.Module:
    """One component built from its registry config with its real class, on ``device``:
    ``meta`` for counting (no memory), a real device for random-weight measurements."""
    import warnings

    # deep copy: config classes write into nested dicts (rope_scaling, text_config) in place
    cfg = {k: copy.deepcopy(v) for k, v in comp.config.items() if not k.startswith("_")}
    with warnings.catch_warnings(), torch.device(device):
        # the one warning building these classes raises: torch's weight_norm deprecation inside
        # the vocoders and the audio VAEs (a library's call, nothing the config can change)
        warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
        if comp.library == "diffusers":
            module = _diffusers_class(comp.class_name).from_config(cfg)
        elif comp.library == "transformers":
            import transformers

            for k in ("architectures", "model_type", "torch_dtype", "dtype", "transformers_version"):
                cfg.pop(k, None)
            cls = getattr(transformers, comp.class_name)
            config = cls.config_class(**cfg)
            config._attn_implementation = "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"
            module = cls(config)
        else:
            raise ProfilerError(f"component {comp.name}: unknown library {comp.library!r}")
    return module.eval()


def _diffusers_class(name: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None:  # classes not exported at top level
        from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
        from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
        from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

        cls = {"AudioLDM2UNet2DConditionModel": AudioLDM2UNet2DConditionModel,
               "AudioLDM2ProjectionModel": AudioLDM2ProjectionModel,
               "LTXLatentUpsamplerModel": LTXLatentUpsamplerModel,
               "StableAudioProjectionModel": StableAudioProjectionModel}.get(name)
    if cls is None:
        raise ProfilerError(f"diffusers has no class {name!r}")
    return cls


@dataclass(frozen=True)
class CallTrace:
    """FLOPs and traffic of ONE call for ONE sample (:mod:`profilers.flops.counting`)."""

    flops: OpCounts
    traffic: Mapping[str, Mapping[str, float]]  # activation / weight / fixed_byte -> byte class -> count
    # bytes at a precision: profilers.flops.profile.bytes_by_class(trace.traffic, precision, role)


def count_call(spec: ModelSpec, call: ComponentCall) -> OpCounts:
    """FLOPs of ONE call of ``call.component`` for ONE sample, split by op class."""
    return trace_call(spec, call).flops


def trace_call(spec: ModelSpec, call: ComponentCall) -> CallTrace:
    """FLOPs and values moved by ONE call of ``call.component`` for ONE sample, by op class."""
    module = _module_for(spec, call)
    class_name = type(module).__name__
    build = BUILDERS.get(class_name)
    if build is None:
        raise ProfilerError(f"{spec.id}: no input builder for {call.component} ({class_name})")
    with torch.device("meta"):
        fn, kwargs = build(spec, call, module)
    attn_names = _top_attention_modules(module)
    counter = count_run(fn, kwargs, module, [module.get_submodule(n) for n in attn_names])
    flops = counter.total.flop()
    if attn_names and flops["attention"] == 0.0:
        raise AttentionNotCountedError(
            f"{spec.id}: {call.component} has {len(attn_names)} attention modules but 0 attention FLOPs were "
            "counted: the attention kernel escaped the counter (run on the meta device)"
        )
    return CallTrace(OpCounts(**flops), counter.total.traffic())


def _module_for(spec: ModelSpec, call: ComponentCall) -> torch.nn.Module:
    """The module that runs a call; families may compose (AnimateDiff's UNetMotionModel)."""
    compose = COMPOSERS.get((spec.family, call.component))
    if compose is not None:
        key = (spec.architecture_key, f"{call.component}+composed")
        if key not in _MODULE_CACHE:
            with torch.device("meta"):
                _MODULE_CACHE[key] = compose(lambda name: build_component(spec, name)).eval()
        return _MODULE_CACHE[key]
    return build_component(spec, call.component)


def _classify(module: torch.nn.Module, counter: FlopCounterMode, spec: ModelSpec, call: ComponentCall) -> OpCounts:
    counts = counter.get_flop_counts()
    glob = {str(op): float(v) for op, v in counts.get("Global", {}).items()}
    linear = sum(v for op, v in glob.items() if op in _LINEAR_OPS)
    conv = sum(v for op, v in glob.items() if op in _CONV_OPS)
    attn_names = _top_attention_modules(module)
    # The counter names modules from the outermost module that ran (``vae.decode`` runs
    # ``decoder``), so match each counted path against the attention modules by suffix.
    matched = []
    for key in counts:
        rest = key.split(".", 1)[1] if "." in key else ""
        if rest and any(a == rest or a.endswith("." + rest) for a in attn_names):
            matched.append(key)
    top = [k for k in matched if not any(k.startswith(o + ".") for o in matched)]
    attention = sum(float(v) for k in top for op, v in counts[k].items() if str(op) in _BATCHED_OPS)
    total = float(sum(glob.values()))
    other = max(0.0, total - linear - conv - attention)
    if attn_names and attention == 0.0:
        raise AttentionNotCountedError(
            f"{spec.id}: {call.component} has {len(attn_names)} attention modules but 0 attention FLOPs were "
            "counted: the attention kernel escaped the counter (run on the meta device)"
        )
    return OpCounts(attention=attention, linear=linear, conv=conv, other=other)


def _top_attention_modules(module: torch.nn.Module) -> list[str]:
    names = [n for n, m in module.named_modules() if n and _ATTENTION_MODULE.search(type(m).__name__)]
    top = []
    for n in names:
        if not any(n.startswith(t + ".") for t in top):
            top.append(n)
    return top


def parameter_count(spec: ModelSpec, name: str) -> int:
    """Parameters of one component (from the meta build)."""
    return sum(p.numel() for p in build_component(spec, name).parameters())


# -- the builder tables ------------------------------------------------------------------------

def _text_encoder(spec, call, module):
    return module, {"input_ids": torch.zeros(1, call.dims["T"], dtype=torch.long)}


def _vae_2d(spec, call, module):
    C = module.config.latent_channels
    if "T" in call.dims:  # audio mel latents: (1, C, time, freq)
        z = torch.empty(1, C, call.dims["T"], call.dims["F"])
    else:
        z = torch.empty(1, C, call.dims["h"], call.dims["w"])
    return module.decode, {"z": z, "return_dict": False}


_SHARED_BUILDERS: dict[str, Builder] = {
    "CLIPTextModel": _text_encoder,
    "CLIPTextModelWithProjection": _text_encoder,
    "T5EncoderModel": _text_encoder,
    "UMT5EncoderModel": _text_encoder,
    "LlamaModel": _text_encoder,
    "AutoencoderKL": _vae_2d,  # the image VAEs and the audio pipelines' mel VAEs
}


def _one_table(*tables: dict) -> dict:
    """The union of tables that must not share a key (a shared key would silently win or lose)."""
    out: dict = {}
    for table in tables:
        shared = out.keys() & table.keys()
        if shared:
            raise RuntimeError(f"input builder tables define {sorted(shared)} twice")
        out.update(table)
    return out


BUILDERS: dict[str, Builder] = _one_table(_SHARED_BUILDERS, _inputs_image.BUILDERS, _inputs_video.BUILDERS,
                                          _inputs_audio.BUILDERS)
"""Component class name -> input builder: ``(spec, call, module) -> (fn, kwargs)``, where
``fn(**kwargs)`` runs one call for ONE sample."""

COMPOSERS: dict[tuple[str, str], Composer] = _one_table(_inputs_image.COMPOSERS, _inputs_video.COMPOSERS,
                                                        _inputs_audio.COMPOSERS)
"""(family, component) -> the function that builds the module the family really runs for that
component from the components it is made of (``compose(component_by_name) -> module``)."""
