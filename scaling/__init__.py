"""Predict, measure and explain the energy of diffusion-model inference.

Public API (imported lazily, so ``import scaling`` stays light)::

    scaling.predict(model, **setting)        -> Estimate       energy, time, CO2e with intervals
    scaling.compare(model, gpus=[...])       -> ranked rows
    scaling.plan(workload_yaml)              -> PlanResult
    scaling.profile(setting)                 -> FlopProfile    FLOPs per component
    scaling.make_setting(model, **setting)   -> GenerationSetting
    scaling.resolve_model(name)              -> ModelSpec
    scaling.resolve_gpu(name)                -> GPUSpec
    scaling.list_models(), scaling.list_gpus()
    scaling.read_runs(path), scaling.append_runs(rows, path)
    scaling.load_law(path=None)              -> the shipped (or a fitted) law
"""

from __future__ import annotations

import importlib

from scaling._version import __version__

_EXPORTS = {
    "predict": "scaling.app.estimate",
    "Estimate": "scaling.app.estimate",
    "compare": "scaling.app.planning",
    "plan": "scaling.app.planning",
    "predict_grid": "scaling.app.planning",
    "Comparison": "scaling.app.planning",
    "CompareRow": "scaling.app.planning",
    "PredictionGrid": "scaling.app.planning",
    "PlanResult": "scaling.app.planning",
    "profile": "profilers.flops.profile",
    "FlopProfile": "profilers.flops.profile",
    "make_setting": "scaling.settings",
    "GenerationSetting": "scaling.settings",
    "resolve_model": "scaling.registry",
    "list_models": "scaling.registry",
    "ModelSpec": "scaling.registry",
    "resolve_gpu": "scaling.hardware",
    "list_gpus": "scaling.hardware",
    "GPUSpec": "scaling.hardware",
    "read_runs": "scaling.runs",
    "append_runs": "scaling.runs",
    "load_law": "fits.law_file",
    "ScalingError": "scaling.errors",
    "track": "profilers.energy.track",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scaling' has no attribute {name!r}")


def __dir__():
    return __all__
