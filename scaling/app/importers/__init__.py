"""Importers: measurements made elsewhere -> the runs table (:mod:`scaling.runs`).

- :func:`import_public` reads one energy CSV of ``datasets/public`` (the shared public
  schema, see its PROVENANCE.md) and applies the flag policies below.
- :func:`import_quality` reads the audio-quality CSV of the same folder into a tidy table of
  (model, dataset, steps, metric, value), to be joined with runs on ``model`` and ``steps``.
- :func:`import_codecarbon` reads CodeCarbon's ``emissions.csv`` (kWh, converted to J here,
  once) for one known generation setting.
- The toolkit's own runner already writes a runs table: read it with
  :func:`scaling.runs.read_runs`.
- :func:`annotate_flops` writes the FLOP of each row's phase from the closed-form profiles.
- :func:`import_file` imports any of these, told apart by :func:`sniff` (``scaling data``).

Model ids and GPU names resolve through the registries. A row whose model or GPU does not
resolve is kept with an empty ``model_key`` / ``gpu_key`` and counted in the report; nothing
is dropped silently: every excluded row is counted under the policy that excluded it.

Flag policies
-------------
Each flag of the public data is handled by one named policy with a default action, the
actions it allows and the reason (:data:`POLICIES`, :mod:`.policies`; the corrections are in
:mod:`._corrections`). Override with
``import_public(path, policy={"first_call": "mark"})`` or
``scaling data import ... --policy first_call=mark``. Actions: ``correct`` (change the value,
keep the published one in ``notes``, add a mark to ``flags``), ``exclude`` (drop the row,
count it), ``mark`` (keep the row, add a mark to ``flags``), ``keep`` (documented, no change).

Modules: :mod:`.policies` (the flag policies), :mod:`._report` (:class:`ImportReport`),
:mod:`._lookups` (registry lookups, CFG, generated frames), :mod:`._corrections` (the
per-flag corrections of the public files), :mod:`.public`, :mod:`.quality`,
:mod:`.codecarbon`, :mod:`.flops` (the FLOP annotation), :mod:`.files` (:func:`sniff`,
:func:`import_file`). This package re-exports their public names.
"""

from __future__ import annotations

from ._lookups import _cfg_column  # noqa: F401  (the default law's notes name scaling.app.importers._cfg_column)
from ._lookups import generated_frames
from ._report import ImportReport, ImportResult, summarize_runs
from .codecarbon import CODECARBON_COLUMNS, KWH_TO_J, import_codecarbon
from .files import check_table_path, import_file, sniff, table_columns
from .flops import annotate_flops
from .policies import POLICIES, Policy, parse_policy_args, resolve_policy
from .public import import_public
from .quality import QUALITY_COLUMNS, import_quality

__all__ = [
    "Policy",
    "POLICIES",
    "ImportReport",
    "ImportResult",
    "KWH_TO_J",
    "QUALITY_COLUMNS",
    "CODECARBON_COLUMNS",
    "resolve_policy",
    "import_public",
    "import_quality",
    "import_codecarbon",
    "import_file",
    "annotate_flops",
    "generated_frames",
    "summarize_runs",
    "sniff",
    "check_table_path",
    "table_columns",
    "parse_policy_args",
]
