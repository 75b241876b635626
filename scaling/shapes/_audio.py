"""Shapes of the audio pipelines."""

from __future__ import annotations
