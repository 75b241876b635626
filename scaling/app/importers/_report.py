"""The report of an import: what it read, changed, dropped and could not resolve.

:class:`ImportReport` is built by every importer, combined over sources by ``scaling data
import``, stored in the runs table's metadata and printed by ``scaling data inspect``
(:func:`summarize_runs` refreshes a stored one from the rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from .policies import POLICIES

__all__ = ["ImportReport", "ImportResult", "summarize_runs"]


_SETTING_COLUMNS = ("gpu", "precision", "height", "width", "frames", "audio_seconds", "steps", "guidance_scale",
                    "batch_size", "phase")


@dataclass
class ImportReport:
    """What an import read, changed, dropped and could not resolve."""

    sources: dict[str, dict[str, int]] = field(default_factory=dict)   # file -> {read, kept}
    rows_read: int = 0
    rows_kept: int = 0
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {action, rows}
    unresolved_models: dict[str, int] = field(default_factory=dict)
    unresolved_gpus: dict[str, int] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)    # id -> {model_key, rows, settings}
    phases: dict[str, int] = field(default_factory=dict)
    flop_rows: int = 0
    flop_errors: dict[str, int] = field(default_factory=dict)           # reason -> rows
    flop_annotated: bool = False

    # -- building ------------------------------------------------------------------------------
    def count_policy(self, name: str, action: str, rows: int) -> None:
        entry = self.policies.setdefault(name, {"action": action, "rows": 0})
        entry["action"] = action
        entry["rows"] += int(rows)

    def describe(self, runs: pd.DataFrame) -> None:
        """Fill the per-model, phase and unresolved counts from the kept rows."""
        self.models = _model_summary(runs)
        self.phases = {str(k): int(v) for k, v in runs["phase"].value_counts().sort_index().items()}
        self.unresolved_models = _counts(runs.loc[runs["model_key"].isna(), "model"])
        gpus = runs.loc[runs["gpu_key"].isna(), "gpu"].fillna("(not stated)")
        self.unresolved_gpus = _counts(gpus)

    @classmethod
    def combine(cls, reports: Sequence["ImportReport"], runs: pd.DataFrame | None = None) -> "ImportReport":
        out = cls()
        for r in reports:
            out.sources.update(r.sources)
            out.rows_read += r.rows_read
            out.rows_kept += r.rows_kept
            for name, e in r.policies.items():
                out.count_policy(name, e["action"], e["rows"])
            out.flop_rows += r.flop_rows
            out.flop_annotated = out.flop_annotated or r.flop_annotated
            for k, v in r.flop_errors.items():
                out.flop_errors[k] = out.flop_errors.get(k, 0) + v
        if runs is not None:
            out.describe(runs)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ImportReport":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    # -- text ----------------------------------------------------------------------------------
    def to_text(self) -> str:
        lines = [f"rows read: {self.rows_read}, kept: {self.rows_kept}"]
        for src, e in self.sources.items():
            lines.append(f"  {src}: read {e['read']}, kept {e['kept']}")
        if self.policies:
            lines.append("policies (rows affected):")
            verbs = {"correct": "corrected", "exclude": "excluded", "mark": "marked", "keep": "kept as is"}
            for name, e in self.policies.items():
                mark = POLICIES[name].marks.get(e["action"]) if name in POLICIES else None
                extra = f" (flag `{mark}`)" if mark else ""
                lines.append(f"  {name:<18} {e['action']:<8} {verbs.get(e['action'], e['action'])} {e['rows']}{extra}")
        if self.phases:
            lines.append("phases: " + ", ".join(f"{k} {v}" for k, v in self.phases.items()))
        if self.unresolved_models:
            lines.append("unresolved models (kept, model_key empty):")
            lines += [f"  {k}: {v} rows" for k, v in self.unresolved_models.items()]
        else:
            lines.append("unresolved models: none")
        if self.unresolved_gpus:
            lines.append("unresolved GPUs (kept, gpu_key empty):")
            lines += [f"  {k}: {v} rows" for k, v in self.unresolved_gpus.items()]
        else:
            lines.append("unresolved GPUs: none")
        if self.models:
            lines.append("per model: rows, distinct settings, registry key")
            w = max(len(m) for m in self.models)
            for m, e in self.models.items():
                lines.append(f"  {m:<{w}} {e['rows']:>6} {e['settings']:>4}  {e['model_key'] or '-'}")
        if self.flop_annotated:
            lines.append(f"FLOP annotated: {self.flop_rows} rows"
                         + ("; without FLOP:" if self.flop_errors else ""))
            lines += [f"  {v} rows: {k}" for k, v in sorted(self.flop_errors.items(), key=lambda kv: -kv[1])]
        return "\n".join(lines)


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(object).value_counts()
    return {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def _model_summary(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    if runs.empty:
        return {}
    cols = [c for c in _SETTING_COLUMNS if c in runs]
    keyed = runs[["model", "model_key", *cols]].astype(object).where(runs[["model", "model_key", *cols]].notna(), None)
    out: dict[str, dict[str, Any]] = {}
    for model, g in keyed.groupby("model", sort=True):
        settings = g[cols].drop_duplicates()
        key = g["model_key"].dropna()
        out[str(model)] = {"model_key": str(key.iloc[0]) if len(key) else None, "rows": int(len(g)),
                           "settings": int(len(settings))}
    return out


@dataclass
class ImportResult:
    """A validated runs table and the report of how it was made."""

    runs: pd.DataFrame
    report: ImportReport


def _short(text: str, limit: int = 110) -> str:
    text = str(text).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_runs(runs: pd.DataFrame, stored: Mapping[str, Any] | None = None) -> ImportReport:
    """The report of a runs table: the stored import report (if any) refreshed from the rows."""
    report = ImportReport.from_dict(stored) if stored else ImportReport(rows_read=len(runs), rows_kept=len(runs))
    if stored and report.rows_kept != len(runs):
        report.sources["(rows appended or removed since the import)"] = {"read": len(runs) - report.rows_kept,
                                                                        "kept": len(runs) - report.rows_kept}
    report.describe(runs)
    if runs["flop"].notna().any() or runs["flop_error"].notna().any():
        report.flop_annotated = True
        report.flop_rows = int(runs["flop"].notna().sum())
        err = runs.loc[runs["flop_error"].notna(), ["model", "flop_error"]]
        report.flop_errors = _counts(err["model"].astype(str) + ": " + err["flop_error"].astype(str).map(_short)) \
            if len(err) else {}
    return report
