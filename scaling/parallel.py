"""Parallel plans: how one generation is split over several GPUs, and the rules a plan must follow.

A plan has three degrees, as xDiT (PyPI ``xfuser``) names them::

    ParallelPlan(ulysses=2, ring=4)          # 8 GPUs of sequence parallelism (USP)
    ParallelPlan(ulysses=4, cfg=2)           # 8 GPUs: the two CFG branches, 4-way Ulysses each
    parse_plan("ulysses=2,ring=4")           # the CLI spelling
    default_plan(8, cfg=True, heads=24, seq_len=64)

- ``ulysses``: DeepSpeed-Ulysses. Every GPU holds 1/(ulysses*ring) of the tokens; before each
  attention an all-to-all trades tokens for heads (each GPU gets all the tokens of its ring
  shard for heads/ulysses of the heads), after it a second all-to-all trades them back.
- ``ring``: ring attention. The GPUs of a ring pass their K and V shards around, ring-1 times per
  attention, while they compute on the shard they hold.
- ``cfg``: CFG parallel (xDiT's ``--use_cfg_parallel``, its ``cfg_degree`` 2): the conditional and
  unconditional branches of classifier-free guidance run on different GPUs, and the noise
  predictions are gathered once per step.

The rules :func:`check_plan` enforces, and what they rest on (xfuser 0.7.0 source):

1. every degree is a positive whole number and ``cfg`` is 1 or 2
   (``xfuser/config/config.py``, ``DataParallelConfig``: ``cfg_degree = 2 if use_cfg_parallel else 1``);
2. ``ulysses * ring * cfg`` equals the GPU count (``ParallelConfig.__post_init__`` asserts that
   ``dp * cfg * sp * tp * pp`` equals the DiT world size; this toolkit models dp = tp = pp = 1);
3. the Ulysses degree divides the attention heads (``xfuser/core/distributed/runtime_state.py``,
   ``_check_model_and_parallel_config``: "transformer backbone has N heads, which is not
   divisible by or smaller than ulysses_degree");
4. ``ulysses * ring`` divides the length the engine cuts into equal shards. For the pipelines
   that split the latent image along its height (PixArt, SD3, CogVideoX, Flux) that length is
   the number of patch rows, latent height / patch size (``runtime_state.py``,
   ``_calc_patches_metadata`` and ``_calc_cogvideox_patches_metadata``: "The height of the
   input is not divisible by the number of sequence parallel devices", and the patch height
   must be a multiple of ``patch_size * sp_degree``). Wan pads its token sequence to a multiple
   of the degree instead (``transformer_wan.py``, ``_chunk_and_pad_sequence``): pass ``pads=True``
   and the rule does not apply;
5. ``cfg=2`` needs classifier-free guidance: without it there is one branch to run (a rule of
   this toolkit; xDiT would split a batch that has no second half).

In the ML.ENERGY v3 H100 runs (``datasets/public/ml_energy_leaderboard_v3_h100.csv``) every
multi-GPU row follows these rules: PixArt-Sigma (16 heads) and SD3.5-medium (24) ran Ulysses
up to 8, Wan2.1-1.3B (12 heads) up to 4, and CogVideoX-2b (30 heads, 30 patch rows at 480p)
only on 2 GPUs, the one sequence-parallel degree above 1 that divides its 30 rows among 2, 4, 8.

Pure Python, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scaling.errors import InvalidSettingError

__all__ = ["CFG_DEGREES", "ParallelPlan", "check_plan", "default_plan", "parse_plan"]

CFG_DEGREES = (1, 2)
"""The CFG-parallel degrees: 1 (both branches on every GPU group) or 2 (one branch per group)."""

_DEGREES = ("ulysses", "ring", "cfg")
_ITEM = re.compile(r"^\s*([A-Za-z_]+)\s*=\s*([^\s,]+)\s*$")


def _check_degree(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSettingError(f"parallel degree `{name}` is {value!r}: it must be a positive whole number")
    return value


@dataclass(frozen=True)
class ParallelPlan:
    """How one generation is split: ``ulysses`` x ``ring`` sequence parallelism, ``cfg`` 1 or 2.

    Raises :class:`InvalidSettingError` when a degree is not a positive whole number or ``cfg``
    is not 1 or 2.
    """

    ulysses: int = 1
    ring: int = 1
    cfg: int = 1

    def __post_init__(self):
        for name in _DEGREES:
            _check_degree(name, getattr(self, name))
        if self.cfg not in CFG_DEGREES:
            raise InvalidSettingError(f"parallel degree `cfg` is {self.cfg}: it must be 1 or 2 (the two CFG branches)")

    @property
    def gpus(self) -> int:
        """GPUs the plan runs on: ulysses x ring x cfg."""
        return self.ulysses * self.ring * self.cfg

    @property
    def sequence_degree(self) -> int:
        """GPUs one CFG branch is split over: ulysses x ring (xDiT's ``sp_degree``)."""
        return self.ulysses * self.ring

    def __str__(self) -> str:
        return f"ulysses={self.ulysses},ring={self.ring},cfg={self.cfg}"


def parse_plan(text: str) -> ParallelPlan:
    """``"ulysses=2,ring=4"`` -> ``ParallelPlan(ulysses=2, ring=4)``; a degree left out is 1.

    Names are case-insensitive and spaces are ignored; ``str(plan)`` parses back to ``plan``.

    Raises
    ------
    InvalidSettingError
        If the text is empty, names a degree twice or a degree other than ulysses, ring and
        cfg, or a value that is not a positive whole number.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidSettingError(f"parallel plan {text!r} is empty: write e.g. ulysses=2,ring=4 (degrees ulysses, ring, cfg)")
    degrees: dict[str, int] = {}
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise InvalidSettingError(f"parallel plan {text!r}: {item.strip()!r} is not name=value (e.g. ulysses=2,ring=4)")
        name, value = m.group(1).lower(), m.group(2)
        if name not in _DEGREES:
            raise InvalidSettingError(f"parallel plan {text!r}: unknown degree {name!r}; the degrees are ulysses, ring, cfg")
        if name in degrees:
            raise InvalidSettingError(f"parallel plan {text!r}: degree {name!r} is given twice")
        if not re.fullmatch(r"\d+", value):
            raise InvalidSettingError(f"parallel degree `{name}` is {value!r}: it must be a positive whole number")
        degrees[name] = int(value)
    return ParallelPlan(**degrees)


def check_plan(plan: ParallelPlan, *, heads: int, seq_len: int, cfg: bool, n_gpus: int | None = None,
               pads: bool = False) -> ParallelPlan:
    """Refuse a plan the engine cannot run (the rules of the module doc); return it when it can.

    Parameters
    ----------
    heads : int
        Attention heads of the denoiser.
    seq_len : int
        The length the engine cuts into ``ulysses * ring`` equal shards: the patch rows of the
        latent for xDiT's height-split pipelines, the token count for Wan (with ``pads=True``).
    cfg : bool
        Whether the setting runs classifier-free guidance (two branches per step).
    n_gpus : int, optional
        The GPU count asked for; the plan must use exactly that many.
    pads : bool
        The engine pads the sequence to a multiple of the degree (rule 4 does not apply).

    Raises
    ------
    InvalidSettingError
        Naming the value and the rule it breaks, on one line.
    """
    if not isinstance(plan, ParallelPlan):
        raise InvalidSettingError(f"parallel plan {plan!r} is not a ParallelPlan: build one with parse_plan('ulysses=2,ring=4')")
    _check_degree("heads", heads)
    _check_degree("seq_len", seq_len)
    if n_gpus is not None:
        _check_degree("n_gpus", n_gpus)
        if plan.gpus != n_gpus:
            raise InvalidSettingError(f"parallel plan {plan} runs on {plan.gpus} GPUs, not {n_gpus}: "
                                      "ulysses x ring x cfg must equal the GPU count")
    if heads % plan.ulysses:
        options = ", ".join(str(d) for d in _divisors(heads))
        raise InvalidSettingError(f"parallel degree ulysses={plan.ulysses} does not divide the {heads} attention heads: "
                                  f"Ulysses gives each GPU heads/ulysses of them (use one of {options})")
    if not pads and seq_len % plan.sequence_degree:
        options = ", ".join(str(d) for d in _divisors(seq_len) if d <= 64)
        raise InvalidSettingError(f"ulysses x ring = {plan.sequence_degree} does not divide the length {seq_len} the engine "
                                  f"cuts into equal shards (the latent's patch rows): use a product in {options}")
    if plan.cfg == 2 and not cfg:
        raise InvalidSettingError("parallel degree cfg=2 needs classifier-free guidance: this setting runs one denoiser "
                                  "pass per step (use cfg=1, or a guidance scale > 1)")
    return plan


def default_plan(n_gpus: int, *, cfg: bool, heads: int, seq_len: int, pads: bool = False) -> ParallelPlan:
    """The plan ``--gpus N`` runs when no ``--parallel`` is given: the first that passes :func:`check_plan` of

    1. CFG parallel (cfg=2) when the setting runs CFG and ``n_gpus`` is even: xDiT's documentation
       (``docs/methods/cfg_parallel.md``) says its one gather per step costs much less than
       sequence parallelism, "therefore, when using CFG, CFG Parallel must be used";
    2. then, on the ``n_gpus / cfg`` GPUs left, the largest Ulysses degree that divides the
       heads, and ring for the rest: in the ML.ENERGY v3 H100 rows the split with the largest
       Ulysses degree is the cheapest in energy in 52 of the 54 (model, GPU count, batch)
       groups that ran more than one split (ring passes K and V ring-1 times per attention,
       Ulysses moves 4 all-to-alls of (U-1)/U of a shard);
    3. without CFG parallel when no plan with it passes.

    Raises
    ------
    InvalidSettingError
        If ``n_gpus`` is not a positive whole number, or no plan on ``n_gpus`` GPUs passes the rules.
    """
    _check_degree("n_gpus", n_gpus)
    tried = []
    for c in ((2, 1) if cfg else (1,)):
        if n_gpus % c:
            continue
        sp = n_gpus // c
        for u in sorted(_divisors(sp), reverse=True):
            plan = ParallelPlan(ulysses=u, ring=sp // u, cfg=c)
            try:
                return check_plan(plan, heads=heads, seq_len=seq_len, cfg=cfg, n_gpus=n_gpus, pads=pads)
            except InvalidSettingError:
                tried.append(str(plan))
    raise InvalidSettingError(f"no parallel plan runs on {n_gpus} GPUs with {heads} heads and {seq_len} rows to split "
                              f"(tried {'; '.join(tried)}): pick a GPU count whose sequence degree divides {seq_len}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
