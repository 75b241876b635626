"""Closed-form tables for a pipeline folder that the registry does not ship (``local:`` specs).

The first use of a folder (``scaling predict --config DIR``, or a hub id found in the local
Hugging Face cache) traces its components on the meta device at the design of settings that
:mod:`profilers.flops.build_closed_form` uses for a registered model of the same pipeline class,
fits the same exact polynomials (FLOPs and bytes moved), and writes the table to the user cache
folder (:func:`profilers.flops.profile.cache_dir`; ``$SCALING_CACHE_DIR`` overrides it), keyed by
the sha256 of the folder's configs (``ModelSpec.config_hash``). Later uses read the cached table
through :mod:`profilers.flops.profile`, without torch. Memory tables are not built here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from profilers.flops.profile import has_table, local_table_path
from scaling.registry import ModelSpec


def ensure_tables(spec: ModelSpec) -> Path | None:
    """Build and cache the closed-form table of a local spec unless it is cached already.

    Returns the cache file (None for a registered spec, whose table ships with the package)."""
    if not spec.config_hash:
        return None
    path = local_table_path(spec)
    if has_table(spec):
        return path
    from profilers.flops.build_closed_form import fit_model  # torch only here, on the first use

    table = fit_model(spec, verbose=False)
    table["config_hash"] = spec.config_hash
    table["source_dir"] = spec.source_dir
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a concurrent reader sees the whole table or none
    return path
