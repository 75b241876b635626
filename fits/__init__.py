"""Laws, estimators, uncertainty and validation of the energy of diffusion inference.

Public API (imported lazily: ``fits.load_law`` and predicting with it need numpy only)::

    fits.load_law(path=None)            -> the shipped default law (or a law file)
        .predict_components(role_flops, gpu, precision, batch=1, steps=None)
                                        -> {role: (energy_j, lo_j, hi_j), "total": ...}
        .predict_time(role_flops, gpu, precision, batch=1, steps=None)
                                        -> (time_s, lo_s, hi_s)
    fits.PowerLaw, fits.PowerLawOverhead, fits.HardwareLaw     scikit-learn estimators
    fits.IdentifiabilityWarning
    fits.coef_table, fits.prediction_interval, fits.bootstrap  intervals
    fits.compare_laws, fits.candidate_laws, fits.public_targets, fits.metrics   validation
    fits.design_matrix, fits.hardware_features                 features
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_law": "fits.law_file",
    "ShippedLaw": "fits.shipped",
    "PowerLaw": "fits.laws",
    "PowerLawOverhead": "fits.laws",
    "HardwareLaw": "fits.laws",
    "IdentifiabilityWarning": "fits.laws",
    "r2_log": "fits.laws",
    "coef_table": "fits.uncertainty",
    "prediction_interval": "fits.uncertainty",
    "bootstrap": "fits.uncertainty",
    "compare_laws": "fits.validation",
    "candidate_laws": "fits.validation",
    "cross_val_predictions": "fits.validation",
    "public_targets": "fits.validation",
    "metrics": "fits.validation",
    "load_public": "fits.validation",
    "design_matrix": "fits.features",
    "hardware_features": "fits.features",
    "prior_exponents": "fits.features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fits' has no attribute {name!r}")


def __dir__():
    return __all__
