"""Input builders of the audio components (one sample, one call, meta tensors)."""

from __future__ import annotations
