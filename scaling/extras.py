"""Optional dependencies: which extra provides which package, and a one-line error when missing.

The predict path needs none of them. Commands that do (``profile --traced``, ``measure``,
``report``, ``--region``, ``sweep --executor slurm``) call :func:`require` before any work,
and the CLI turns any other missing optional import into the same one-line error.
"""

from __future__ import annotations

import importlib.util

from scaling.errors import MissingDependencyError

DISTRIBUTION = "diffusion-energy-scaling"

EXTRA_OF = {
    "torch": "torch", "diffusers": "torch", "transformers": "torch", "fvcore": "torch", "torchsde": "torch",
    "sentencepiece": "torch", "pynvml": "gpu", "zeus": "gpu", "codecarbon": "carbon", "plotly": "report", "submitit": "sweep",
    "nbclient": "notebooks", "nbformat": "notebooks",
}


def missing_message(module: str, what: str | None = None) -> str:
    root = module.split(".")[0]
    extra = EXTRA_OF.get(root, "all")
    needs = f"{what} needs {root}" if what else f"this needs {root}"
    return f"{needs}, which is not installed: pip install '{DISTRIBUTION}[{extra}]'"


def require(*modules: str, what: str | None = None) -> None:
    """Raise :class:`MissingDependencyError` naming the extra if a module is not importable."""
    for m in modules:
        if importlib.util.find_spec(m) is None:
            raise MissingDependencyError(missing_message(m, what))
