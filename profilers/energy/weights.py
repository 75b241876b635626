"""Weights that cannot run code: the check of a ``--weights DIR`` folder before it is loaded.

A diffusers folder is loaded with ``use_safetensors=True, local_files_only=True,
trust_remote_code=False`` (:func:`from_pretrained_kwargs`): safetensors files hold tensors only,
nothing is downloaded, and no code shipped with the folder runs. Pickled weights (``.bin``,
``.pt``, ``.pth``, ``.ckpt``, ``.pkl``) are loaded with Python's pickle, which can run any code
the file holds; a folder where some component has only pickled weights is refused
(:class:`~scaling.errors.UnsafeWeightsError`) unless the user passes ``--allow-pickle`` (then
diffusers prefers safetensors where both are present). A component whose ``model_index.json``
entry names a ``.py`` file of the folder (custom code) is refused, with or without
``--allow-pickle``: code from a weights folder is never run.

:func:`check_weights_dir` reads ``model_index.json`` and looks at file names only: no weight is
opened, so it runs before any pipeline is built (``scaling measure`` and ``scaling sweep`` call
it before the work, and the loader again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from scaling.errors import UnknownModelError, UnsafeWeightsError

__all__ = ["PICKLE_SUFFIXES", "SAFE_SUFFIXES", "check_weights_dir", "from_pretrained_kwargs"]

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _weight_files(folder: Path) -> dict[Path, tuple[list[str], list[str]]]:
    """Per folder (the root and each component folder): (safetensors names, pickled names)."""
    found: dict[Path, tuple[list[str], list[str]]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        safe = sorted(f for f in filenames if f.lower().endswith(SAFE_SUFFIXES))
        pickled = sorted(f for f in filenames if f.lower().endswith(PICKLE_SUFFIXES))
        if safe or pickled:
            found[Path(dirpath)] = (safe, pickled)
    return found


def check_weights_dir(folder: str | os.PathLike, *, allow_pickle: bool = False) -> Path:
    """Check a ``--weights`` folder before anything is loaded; returns it.

    Raises
    ------
    UnknownModelError
        It is not a folder, or holds no ``model_index.json`` (not a diffusers pipeline folder).
    UnsafeWeightsError
        A component folder holds pickled weights and no safetensors, and ``allow_pickle`` is
        False: one line naming the folder, the file and the way out.
    """
    p = Path(folder)
    if not p.is_dir():
        raise UnknownModelError(f"--weights {str(p)!r}: not a folder (rule: a local diffusers pipeline folder)")
    if not (p / "model_index.json").is_file():
        raise UnknownModelError(f"--weights {str(p)!r}: no model_index.json there "
                                "(expected a diffusers pipeline folder)")
    try:
        index = json.loads((p / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnknownModelError(f"--weights {str(p)!r}: model_index.json does not read as JSON ({exc})") from None
    if not isinstance(index, dict):
        raise UnknownModelError(f"--weights {str(p)!r}: model_index.json is not a JSON object")
    for component, entry in index.items():
        if isinstance(entry, list) and entry and isinstance(entry[0], str) and \
                (p / component / f"{entry[0]}.py").is_file():
            raise UnsafeWeightsError(
                f"--weights {str(p)!r}: component {component!r} is code shipped with the folder "
                f"({component}/{entry[0]}.py); rule: code from a weights folder is never run "
                "(only diffusers and transformers classes load)")
    if allow_pickle:
        return p
    for where, (safe, pickled) in _weight_files(p).items():
        if pickled and not safe:
            part = where.relative_to(p).as_posix()
            raise UnsafeWeightsError(
                f"--weights {str(p)!r}: {'component ' + repr(part) if part != '.' else 'the folder'} has pickled "
                f"weights only ({pickled[0]}{' and more' if len(pickled) > 1 else ''}): loading a pickle can run "
                "code; convert them to .safetensors, or pass --allow-pickle if you trust the files")
    return p


def from_pretrained_kwargs(allow_pickle: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``DiffusionPipeline.from_pretrained`` for a local folder:
    safetensors only (unless pickles are allowed), nothing downloaded, no remote code."""
    return {"use_safetensors": None if allow_pickle else True, "local_files_only": True,
            "trust_remote_code": False}
