"""The runs table: one row per measured call and phase.

The schema is data (:data:`SCHEMA`): every column has a dtype, a unit, whether it is
required, and a description. ``datasets/README.md`` prints the same table. The schema version
(:data:`SCHEMA_VERSION`) is stored in the parquet metadata of every file of a table; a file
written by a newer schema is refused rather than misread.

The table is a superset of the public CSV columns (``datasets/public/*.csv``) plus
run bookkeeping (``run_id``, ``timestamp``, ``repeat``, ``warmup``, ``idle_power_w``,
``package_version``), the resolved registry keys (``model_key``, ``gpu_key``, ``cfg``), the
FLOP of the row's phase (``flop`` and ``flop_<role>``) and two marks: ``estimated`` (the
energy is an estimate, not a measurement) and ``flags`` (the import policies that touched the
row, ``;``-separated, see :mod:`scaling.app.importers`).

Conventions
-----------
- Energies are joules for ONE pipeline call. With ``batch_size`` > 1 the call made the whole
  batch: divide by ``batch_size`` for energy per output.
- ``phase`` is ``total`` (the whole call), a component (``text_encoder``, ``denoiser``,
  ``decoder``, ``vocoder``, ``upsampler``) or a pipeline *stage* of a multi-stage pipeline
  (``generate``, ``upsample``, ``denoise``: the LTX-Video 0.9.7 two-pass pipeline of the
  public data). Stage names are kept as the source wrote them, not mapped onto components: a
  stage runs several components (``denoise`` is a second denoiser pass *and* the VAE decode).
  Components and stages both partition the call; when a call has both a ``total`` row and
  phase rows, ``total`` is their sum. Filter on ``phase == "total"`` to count each call once
  (:func:`totals`).
- ``run_id`` names one call; its phase rows share it. ``(run_id, phase, repeat)`` is unique.
- Row numbers in error messages count data rows from 1 (the CSV header is not a row).

On disk (:mod:`scaling.runs._store`): ``runs.parquet`` is the base file and each append adds
one part file to ``runs.parquet.parts/``, so an append costs the same at row 10 as at row
100,000; :func:`compact_runs` merges the parts into the base on demand.

API: :func:`empty_runs`, :func:`validate_runs`, :func:`read_runs`, :func:`read_run_keys`
(a few columns only), :func:`count_runs`, :func:`write_runs` (atomic), :func:`append_runs`
(atomic, never loses or rewrites earlier rows; a refused append leaves no lock file nor index it
made), :func:`check_runs_output` (an output table checked before any measurement: its name
ends in one of :data:`RUNS_SUFFIXES`, an existing one is a runs table), :func:`compact_runs`,
:func:`remove_runs`,
:func:`to_csv`, :func:`from_csv`, :func:`schema_table`.

Modules: ``_schema`` (the columns), ``_validate`` (dtypes and row rules), ``_io`` (CSV,
atomic replace, lock), ``_index`` (the key index), ``_store`` (the parquet table on disk).
"""

from __future__ import annotations

# The private names are re-exported too: other modules import them from here (scaling.app.importers:
# _open_text, _read_csv_text, _package_version) and they were all importable before the split.
from scaling.precision import PRECISIONS
from scaling.runs._index import PART_RE
from scaling.runs._io import (
    _atomic_path,
    _fsync_dir,
    _is_csv,
    _lock,
    _open_text,
    _read_csv_text,
    from_csv,
    to_csv,
)
from scaling.runs._schema import (
    _FLAG_RE,
    _META_REPORT,
    _META_VERSION,
    COLUMNS,
    COMPONENT_PHASES,
    ENERGY_COLUMNS,
    BYTE_ROLE_COLUMNS,
    FLOP_ROLE_COLUMNS,
    KEY_COLUMNS,
    MODALITIES,
    PHASES,
    PUBLIC_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STAGE_PHASES,
    Column,
    _package_version,
    add_flag,
    has_flag,
    schema_markdown,
    schema_table,
    totals,
)
from scaling.runs._store import (
    _META_THROUGH,
    RUNS_SUFFIXES,
    _write_parquet,
    append_runs,
    check_runs_output,
    compact_runs,
    count_runs,
    parts_dir,
    read_metadata,
    read_run_keys,
    read_runs,
    remove_runs,
    write_runs,
)
from scaling.runs._validate import (
    _check_rules,
    _coerce,
    _err,
    _first,
    _pandas_dtype,
    _show,
    empty_runs,
    validate_runs,
)

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA",
    "Column",
    "COLUMNS",
    "PUBLIC_COLUMNS",
    "ENERGY_COLUMNS",
    "COMPONENT_PHASES",
    "STAGE_PHASES",
    "PHASES",
    "MODALITIES",
    "BYTE_ROLE_COLUMNS",
    "FLOP_ROLE_COLUMNS",
    "KEY_COLUMNS",
    "empty_runs",
    "validate_runs",
    "read_runs",
    "read_run_keys",
    "count_runs",
    "write_runs",
    "append_runs",
    "check_runs_output",
    "RUNS_SUFFIXES",
    "compact_runs",
    "remove_runs",
    "parts_dir",
    "to_csv",
    "from_csv",
    "totals",
    "has_flag",
    "add_flag",
    "schema_table",
    "schema_markdown",
    "read_metadata",
]

