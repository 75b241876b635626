"""FLOP and byte counting. The class names every counter shares live here, with no imports:
the torch-free :mod:`profilers.flops.profile` (which holds the byte widths, re-exports these names
and imports the tracers lazily) and the torch-side tracers (:mod:`~profilers.flops.counting`,
:mod:`~profilers.flops.traced`, :mod:`~profilers.flops.build_attention_sites`) both import them,
so neither imports the other at module level and there is no import cycle."""

OP_CLASSES = ("attention", "linear", "conv", "other")
"""The FLOP op classes (see :mod:`profilers.flops.traced`)."""

BYTE_CLASSES = OP_CLASSES + ("elementwise",)
"""The byte classes: the FLOP op classes plus ``elementwise`` (every op that counts no FLOP:
norms, activations, adds and muls, softmax outside attention, rotary embeddings, modulation,
casts, copies, concatenations, embedding lookups)."""

KINDS = ("activation", "weight", "fixed_byte")
"""What a traffic count is made of (values, values, bytes)."""
