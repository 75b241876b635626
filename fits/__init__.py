"""Laws, estimators, uncertainty and validation of the energy of diffusion inference.

Public API (imported lazily: ``fits.load_law`` and predicting with it need numpy only)::

    fits.load_law(path=None)            -> fits.Law: the shipped default law (or a law file)
        .predict(setting, flop_by_role, gpu_spec, model_spec, byte_by_role=None)
                                        -> fits.LawPrediction: energy_j {role, "total": Interval},
                                           time_s Interval, flags, notes, roofline_terms_s
        .predict_energy(flop_by_role, gpu_spec, precision, steps=None, byte_by_role=None)
                                        -> {role: Interval, "total": Interval}  (the law alone)
        .predict_time(flop_by_role, gpu_spec, precision, steps=None, byte_by_role=None) -> Interval
                                        (byte_by_role = FlopProfile.by_role_byte(): required by the
                                         roofline laws, the shipped one included)
    fits.LawState, fits.predict_interval    one fitted target, and its interval (estimator.to_state())
    fits.PowerLaw, fits.PowerLawOverhead, fits.HardwareLaw     scikit-learn estimators (FLOPs)
    fits.RooflineLaw                                           scikit-learn estimator (FLOPs and bytes)
    fits.IdentifiabilityWarning
    fits.coef_table, fits.prediction_interval, fits.bootstrap  intervals
    fits.compare_laws, fits.candidate_laws, fits.metrics       validation
    fits.public_targets                                        the issue's targets on the public data
    fits.design_matrix, fits.hardware_features                 features
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_law": "fits.law_file",
    "Law": "fits.law_file",
    "LawPrediction": "fits.law_file",
    "ShippedLaw": "fits.law_file",
    "LawState": "fits.law",
    "predict_interval": "fits.law",
    "PowerLaw": "fits.laws",
    "PowerLawOverhead": "fits.laws",
    "HardwareLaw": "fits.laws",
    "RooflineLaw": "fits.roofline",
    "IdentifiabilityWarning": "fits.laws",
    "r2_log": "fits.laws",
    "coef_table": "fits.uncertainty",
    "prediction_interval": "fits.uncertainty",
    "bootstrap": "fits.uncertainty",
    "compare_laws": "fits.validation",
    "candidate_laws": "fits.validation",
    "cross_val_predictions": "fits.validation",
    "public_targets": "fits.targets",
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
