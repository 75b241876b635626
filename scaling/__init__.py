"""Predict, measure and explain the energy of diffusion-model inference."""

__version__ = "0.1.0"
