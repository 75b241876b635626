"""One pass over the aten ops of a meta-device call: FLOPs and bytes moved, by op class.

:class:`OpCounter` is a ``TorchDispatchMode`` (``torch.utils._python_dispatch``) that sees every
aten op a call runs and counts

- **FLOPs** with the formulas of ``torch.utils.flop_counter`` (``flop_registry``: the same
  numbers as ``FlopCounterMode``, which it replaces here because it is about twice as fast: no
  global module tracker, no decomposition attempt on every op);
- **values moved** (activation values, weight values and fixed-width bytes: the kinds of
  :mod:`profilers.flops.profile`, whose :func:`~profilers.flops.profile.bytes_by_class` turns
  them into bytes at a precision).

Op classes (FLOPs and bytes): ``attention`` (batched matmuls and SDPA inside attention
modules, and the element-wise work on their score matrices), ``linear`` (mm / addmm),
``conv``, ``other`` (any other op that counts FLOPs), and for bytes only ``elementwise``
(every op that counts no FLOP).

What an op moves (the fusion assumptions: eager PyTorch, one kernel per aten op)
    - every op reads each tensor argument once and writes each tensor it returns: its distinct
      elements (an expanded, stride-0 dimension is read once), times the element width;
    - **weights**: an op that reads a parameter or buffer (or a view of one) counts it as a
      weight read, once per op that reads it. In the architectures here each parameter is read
      by one op per forward, so this is "once per component call", except where a component runs
      its layers several times in one call (chunked or tiled VAE decoding: the weights are read
      once per chunk, as the kernels do). An embedding lookup reads the rows it gathers, not the
      table;
    - **views** (``view``, ``reshape`` without copy, ``permute``, ``transpose``, ``expand``,
      ``slice``, ``split``, ...) move nothing: metadata only; ``copy_``, ``contiguous`` and
      ``clone`` move their bytes (``copy_`` does not read its destination); ``empty`` moves
      nothing;
    - **fused attention**: ``F.scaled_dot_product_attention`` is one kernel that reads Q, K, V
      (and a mask if one is given) and writes O, nothing else (flash / memory-efficient SDPA;
      on the meta device PyTorch runs its math decomposition, whose FLOPs are counted and whose
      internal traffic is not);
    - **eager attention** (a bmm / softmax / bmm sequence that is not SDPA, e.g. diffusers'
      ``AttnProcessor`` or eager transformers attention) moves its score matrix: the first
      batched matmul of an attention module writes it, every element-wise op on it (scale,
      mask, softmax) reads and writes it (class ``attention``), the second matmul reads it.

Everything is counted in values except ``fixed_byte``: tensors of the default floating dtype
(the meta build's float32, which a real run holds in its compute dtype) count as values, other
dtypes (integer ids and positions, boolean masks, float64, complex) in bytes at their own width.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakIdKeyDictionary

from profilers.flops import BYTE_CLASSES, OP_CLASSES

aten = torch.ops.aten

LINEAR_OPS = {"aten.mm", "aten.addmm"}
CONV_OPS = {"aten.convolution", "aten._convolution", "aten.convolution_backward"}
BATCHED_OPS = {"aten.bmm", "aten.baddbmm", "aten._scaled_dot_product_efficient_attention",
               "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_cudnn_attention",
               "aten._flash_attention_forward", "aten._efficient_attention_forward"}

# ops FlopCounterMode hands back untouched (size / stride queries of tensor subclasses)
_PASS = {aten.sym_is_contiguous.default, aten.is_contiguous.default, aten.is_contiguous.memory_format,
         aten.is_strides_like_format.default, aten.is_non_overlapping_and_dense.default, aten.size.default,
         aten.sym_size.default, aten.stride.default, aten.sym_stride.default, aten.storage_offset.default,
         aten.sym_storage_offset.default, aten.numel.default, aten.sym_numel.default, aten.dim.default,
         torch.ops.prim.layout.default}
# metadata-only ops that the schema does not mark as views
_METADATA = {"aten._unsafe_view", "aten.lift_fresh", "aten._reshape_alias", "aten.detach", "aten.alias"}
_NO_WRITE = {"aten.empty", "aten.empty_like", "aten.empty_strided", "aten.new_empty", "aten.new_empty_strided"}
# ops that decompose on the meta device (index arithmetic) but are one kernel on a GPU: their
# traffic is their input and output, not the decomposition's
_ONE_KERNEL = ("aten.upsample_", "aten._upsample_")
_NO_READ_SELF = {"aten.copy_", "aten.fill_", "aten.zero_", "aten.normal_", "aten.uniform_"}

# per-op kinds (cached per OpOverload)
_VIEW, _NONE, _FLOP, _PLAIN, _EMBED, _INPLACE = range(6)


def _kind(func) -> tuple[int, str, bool]:
    name = str(func._overloadpacket)
    # FlopCounterMode tries ``func.decompose`` on every op (its registry is keyed by packet, the
    # op by overload): only ops with a CompositeImplicitAutograd kernel decompose
    cia = torch._C.DispatchKey.CompositeImplicitAutograd
    decomposes = func is not torch.ops.prim.device.default and (
        cia in func.py_kernels or torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), cia))
    if func.is_view or name in _METADATA:
        return _VIEW, name, decomposes
    if name in _NO_WRITE:
        return _NONE, name, decomposes
    if func._overloadpacket in flop_registry:
        return _FLOP, name, decomposes
    if name == "aten.embedding":
        return _EMBED, name, decomposes
    if any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments):
        return _INPLACE, name, decomposes
    return _PLAIN, name, decomposes


def _tensors(items: Iterable[Any]) -> list[torch.Tensor]:
    out = []
    for a in items:
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(t for t in a if isinstance(t, torch.Tensor))
    return out


class _NoMemo(Exception):
    pass


def _key_part(a: Any):
    if isinstance(a, torch.Tensor):
        if a.device.type != "meta":
            raise _NoMemo
        return (tuple(a.shape), a.stride(), a.dtype)
    if isinstance(a, (list, tuple)):
        return tuple(_key_part(x) for x in a)
    if a is None or isinstance(a, (bool, int, float, str, torch.dtype, torch.device, torch.memory_format,
                                   torch.layout)):
        return (type(a), a)
    raise _NoMemo


def _spec(out: Any):
    """What re-creates ``out``: ("t", shape, stride, dtype), or a list / tuple of those."""
    if isinstance(out, torch.Tensor):
        if out.device.type != "meta":
            raise _NoMemo
        return ("t", tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in out):
        return (type(out), [_spec(t) for t in out])
    raise _NoMemo


def _fresh(spec: Any):
    if spec[0] == "t":
        return torch.empty_strided(spec[1], spec[2], dtype=spec[3], device="meta")
    return spec[0](_fresh(s) for s in spec[1])


def _distinct(t: torch.Tensor) -> int:
    """Elements an op really touches: a stride-0 (expanded) dimension counts once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n


class Counts:
    """FLOPs (exact integers per op class) and traffic of one scope."""

    __slots__ = ("flop_by_op", "activation", "weight", "fixed_byte")

    def __init__(self):
        self.flop_by_op: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # class -> op -> FLOP
        self.activation = dict.fromkeys(BYTE_CLASSES, 0)
        self.weight = dict.fromkeys(BYTE_CLASSES, 0)
        self.fixed_byte = dict.fromkeys(BYTE_CLASSES, 0)

    def flop(self) -> dict[str, float]:
        """FLOP by op class, summed as :func:`profilers.flops.traced._classify` sums FlopCounterMode's
        counts (per op to float, then per class; ``other`` as the remainder of the total)."""
        per = {c: float(sum(float(v) for v in self.flop_by_op.get(c, {}).values())) for c in OP_CLASSES}
        total = float(sum(sum(d.values()) for d in self.flop_by_op.values()))
        other = max(0.0, total - per["linear"] - per["conv"] - per["attention"])
        return {"attention": per["attention"], "linear": per["linear"], "conv": per["conv"], "other": other}

    def traffic(self) -> dict[str, dict[str, float]]:
        return {"activation": {k: float(v) for k, v in self.activation.items()},
                "weight": {k: float(v) for k, v in self.weight.items()},
                "fixed_byte": {k: float(v) for k, v in self.fixed_byte.items()}}


class _SDPABoundary(TorchFunctionMode):
    """Counts fused SDPA's traffic (Q, K, V, mask in; O out) and silences the byte count of the
    math decomposition that runs underneath on the meta device."""

    def __init__(self, counter: "OpCounter"):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        c = self.counter
        c.in_sdpa += 1
        try:
            out = func(*args, **kwargs)
        finally:
            c.in_sdpa -= 1
        cls = "attention" if c.in_attention else "other"
        reads = _tensors(list(args) + list(kwargs.values()))
        c._move(cls, reads, _tensors([out]))
        return out


class OpCounter(TorchDispatchMode):
    """Count FLOPs and traffic of everything run inside ``with counter:``.

    ``attention_modules``: the modules whose batched matmuls are attention (the outermost
    attention modules of the component); ``scopes``: optional ``{name: module}`` whose ops are
    also counted on their own (per attention site, per transformer block); ``state``: the
    parameters and buffers (weights).
    """

    def __init__(self, attention_modules: Iterable[torch.nn.Module] = (), state: Iterable[torch.Tensor] = (),
                 scopes: Mapping[str, torch.nn.Module] | None = None):
        super().__init__()
        self.total = Counts()
        self.scopes: dict[str, Counts] = {n: Counts() for n in (scopes or {})}
        self._active: list[Counts] = [self.total]
        self.in_attention = 0
        self.in_sdpa = 0
        self.in_kernel = 0
        self._weights = WeakIdKeyDictionary()
        for t in state:
            self._weights[t] = True
        self._scores = WeakIdKeyDictionary()
        self._kinds: dict[Any, tuple[int, str, bool]] = {}
        # meta outputs are a pure function of the inputs' metadata: ops that create fresh
        # tensors are run once per (op, input shapes / strides / dtypes, other arguments) and
        # their outputs re-created with empty_strided afterwards (the repeated blocks of a
        # transformer run the same ops on the same shapes); the FLOPs are remembered with them
        self._memo: dict[Any, tuple[Any, int]] = {}
        self._handles = []
        for m in attention_modules:
            self._handles.append(m.register_forward_pre_hook(self._enter_attention))
            self._handles.append(m.register_forward_hook(self._exit_attention, always_call=True))
        for name, m in (scopes or {}).items():
            counts = self.scopes[name]
            self._handles.append(m.register_forward_pre_hook(lambda mod, a, c=counts: self._active.append(c)))
            self._handles.append(m.register_forward_hook(lambda mod, a, o, c=counts: self._pop(c), always_call=True))
        self._sdpa = _SDPABoundary(self)

    # -- module hooks ---------------------------------------------------------------------------
    def _enter_attention(self, mod, args):
        self.in_attention += 1

    def _exit_attention(self, mod, args, out):
        self.in_attention -= 1

    def _pop(self, counts: Counts) -> None:
        for i in range(len(self._active) - 1, 0, -1):
            if self._active[i] is counts:
                del self._active[i]
                return

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def sdpa_boundary(self) -> TorchFunctionMode:
        """The function mode to enter around the dispatch mode (fused SDPA's traffic)."""
        return self._sdpa

    # -- counting -------------------------------------------------------------------------------
    def _move(self, cls: str, reads: list[torch.Tensor], writes: list[torch.Tensor], weight_rows: int = 0,
              activation_rows: int = 0) -> None:
        act, weight, fixed = activation_rows, weight_rows, 0
        default = torch.get_default_dtype()
        for t in reads:
            n = _distinct(t)
            if t in self._weights:
                if t.dtype is default:
                    weight += n
                else:
                    fixed += n * t.element_size()
            elif t.dtype is default:
                act += n
            else:
                fixed += n * t.element_size()
        for t in writes:
            n = _distinct(t)
            if t.dtype is default:
                act += n
            else:
                fixed += n * t.element_size()
        for c in self._active:
            c.activation[cls] += act
            c.weight[cls] += weight
            c.fixed_byte[cls] += fixed

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _PASS:
            return NotImplemented
        info = self._kinds.get(func)
        if info is None:
            info = self._kinds[func] = _kind(func)
        kind, name, decomposes = info
        if decomposes:  # as FlopCounterMode: an op without a FLOP formula that decomposes is counted as its parts
            one_kernel = name.startswith(_ONE_KERNEL)
            self.in_kernel += one_kernel
            try:
                with self:
                    r = func.decompose(*args, **kwargs)
            finally:
                self.in_kernel -= one_kernel
            if r is not NotImplemented:
                if one_kernel and not (self.in_sdpa or self.in_kernel):
                    self._move("elementwise", _tensors(args) + _tensors(kwargs.values()), _tensors([r]))
                return r
        key = None
        if kind in (_PLAIN, _FLOP, _EMBED):
            try:
                key = (func, _key_part(args), _key_part(tuple(sorted(kwargs.items()))))
            except _NoMemo:
                key = None
        hit = self._memo.get(key) if key is not None else None
        if hit is not None:
            with torch._C.DisableTorchFunction():
                out = _fresh(hit[0])
        else:
            out = func(*args, **kwargs)
        if kind == _VIEW:
            src = _tensors(args[:1])
            if src:
                outs = _tensors([out])
                if src[0] in self._weights:
                    for t in outs:
                        self._weights[t] = True
                if src[0] in self._scores:
                    for t in outs:
                        self._scores[t] = True
            return out
        if kind == _NONE:
            return out
        reads = _tensors(args) + _tensors(kwargs.values())
        scored = self.in_attention and any(t in self._scores for t in reads)
        if hit is not None:
            flop = hit[1]
        elif kind == _FLOP:
            flop = flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
        else:
            flop = 0
        if key is not None and hit is None:
            try:
                self._memo[key] = (_spec(out), flop)
            except _NoMemo:
                pass
        if kind == _FLOP:
            if name in LINEAR_OPS:
                cls = "linear"
            elif name in CONV_OPS:
                cls = "conv"
            elif name in BATCHED_OPS and self.in_attention:
                cls = "attention"
            else:
                cls = "other"
            for c in self._active:
                c.flop_by_op[cls][name] += flop
            if cls == "attention" and not scored:  # Q K^T: its output is the score matrix
                for t in _tensors([out]):
                    self._scores[t] = True
        else:
            cls = "attention" if scored else "elementwise"
            if scored:
                for t in _tensors([out]):
                    self._scores[t] = True
        if self.in_sdpa or self.in_kernel:
            return out
        writes = _tensors([out])
        if kind == _EMBED:  # embedding(weight, indices): reads the gathered rows only
            table, idx = args[0], args[1]
            rows = _distinct(writes[0]) if table.dtype is torch.get_default_dtype() else 0
            if table in self._weights:
                self._move(cls, [idx], writes, weight_rows=rows)
            else:
                self._move(cls, [idx], writes, activation_rows=rows)
            return out
        if kind == _INPLACE:
            if name in _NO_READ_SELF and reads:
                reads = reads[1:]
            writes = [t for t in writes if t is not None]
        self._move(cls, reads, writes)
        return out


def count_run(fn: Callable[..., Any], kwargs: Mapping[str, Any], module: torch.nn.Module,
              attention_modules: Iterable[torch.nn.Module], scopes: Mapping[str, torch.nn.Module] | None = None
              ) -> OpCounter:
    """Run ``fn(**kwargs)`` on the meta device under an :class:`OpCounter` and return it."""
    state = list(module.parameters()) + list(module.buffers())
    counter = OpCounter(attention_modules, state, scopes)
    try:
        with torch.no_grad(), torch.device("meta"), counter.sdpa_boundary, counter:
            fn(**kwargs)
    finally:
        counter.remove_hooks()
    return counter
