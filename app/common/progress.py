"""The progress callback long commands take: one line of text per call (``click.echo``)."""
from __future__ import annotations

from typing import Callable

Echo = Callable[[str], None]
