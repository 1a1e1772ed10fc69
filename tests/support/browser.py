"""Debian's chromium for the Playwright tests, and the live server's admin password."""
from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "browser test password"

# every browser test: marked, and skipped (saying how to install it) where chromium is missing
NEEDS_CHROMIUM = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"Debian chromium is not installed at {CHROMIUM} "
                              "(apt-get install -y chromium chromium-driver); .ci/run installs "
                              "it in CI"),
]
