"""What an import did: per-file counts, the problem rows, and the errors that stop it.

Kept apart from reading and writing so that the CLI, the benchmarks and the tests read one
report shape whatever produced it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


class ExportError(Exception):
    """The export cannot be imported at all (missing or unreadable folder or file)."""


class StrictImportError(ExportError):
    """``strict=True`` met a bad row; ``report`` holds the counts up to that row."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    reason: str
    duplicate: bool = False  # True: a repeated row, counted as already present, not an error

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileReport:
    name: str
    read: int = 0
    imported: int = 0
    updated: int = 0
    already_present: int = 0
    skipped: int = 0
    duplicates: int = 0  # repeats reported line by line; also counted in already_present
    issues: list[Issue] = field(default_factory=list)
    unshown: int = 0  # problem lines beyond report_limit, counted but not echoed or kept
    reasons: dict[str, int] = field(default_factory=dict)  # every problem row, by kind of reason
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only: throughput on a busy machine


@dataclass
class ImportReport:
    directory: Path
    files: dict[str, FileReport] = field(default_factory=dict)
    genres_created: int = 0
    seconds: float = 0.0
    stopped_at: Issue | None = None  # strict mode: the bad row that ended the import

    @property
    def issues(self) -> list[Issue]:
        return [issue for rep in self.files.values() for issue in rep.issues]

    def summary_table(self) -> str:
        head = ("file", "read", "imported", "updated", "already present", "skipped")
        rows = [(r.name, r.read, r.imported, r.updated, r.already_present, r.skipped)
                for r in self.files.values()]
        widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                           for i, (v, w) in enumerate(zip(row, widths))) for row in [head, *rows]]
        duplicates = sum(r.duplicates for r in self.files.values())
        lines.append(f"genres created: {self.genres_created}; duplicate rows: {duplicates}; "
                     f"{self.seconds:.1f} s")
        if self.stopped_at:
            lines.append(f"stopped at {self.stopped_at} (--strict)")
        lines.extend(self.reason_summary())
        return "\n".join(lines)

    def reason_summary(self) -> list[str]:
        """Every problem row (echoed or not) counted by kind of reason, per file."""
        out: list[str] = []
        for rep in self.files.values():
            if rep.reasons:
                out.append(f"{rep.name}: problem rows by reason")
                for reason, n in sorted(rep.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                    out.append(f"  {n:>9,}  {reason}")
        return out


_REASON_KINDS = [(re.compile(p), r) for p, r in [
    (r"'[^']*'|\"[^\"]*\"", "…"), (r"user_id -?\d+", "user_id …"),
    (r"duplicate of line \d+", "duplicate of an earlier line"), (r", got .*$", ""),
    (r"^invalid JSON \(.*\)$", "invalid JSON"),
]]


def reason_kind(reason: str) -> str:
    """The reason without the row's own values, so that like problems are counted together."""
    for pattern, replacement in _REASON_KINDS:
        reason = pattern.sub(replacement, reason)
    return reason
