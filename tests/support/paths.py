"""Where the tests find the repository, the shared data and the faulty export fixture."""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
SHARED = ROOT.parent / "shared"
ARTIFACTS = ROOT / "test-artifacts"
FAULTY_EXPORT = TESTS / "fixtures" / "faulty_export"
