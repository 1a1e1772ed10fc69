"""Untrusted text from exports and requests made safe to store, show and write into files.

Why one module: the same name travels from an import into HTML pages, M3U/CSV/JSON downloads and
search answers. A control character or a Unicode line separator inside it can end a line early
in a reader (``str.splitlines`` splits at U+0085, U+2028, vertical tab ...), so an artist name
could inject ``#EXTINF`` lines into an M3U file; NUL bytes break C-based readers and pages; a bidirectional override reorders what is shown.
"""
from __future__ import annotations

import re
import unicodedata

# Everything ``str.splitlines`` treats as a line end, and tabs: becomes one space.
_BREAKS = "\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK_RE = re.compile(f"[{_BREAKS}]")
# The remaining C0/C1 control characters (NUL, bell, escape, DEL ...): removed.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")
_ANY_RE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\u2028\u2029]")


def clean_text(value: str) -> str:
    """``value`` without control characters, line separators (breaks become a space) or
    format characters (``strip_format``)."""
    if _ANY_RE.search(value):  # the usual case: one scan, no copy
        value = _CONTROL_RE.sub("", _BREAK_RE.sub(" ", value))
    return strip_format(value)


def strip_format(value: str) -> str:
    """``value`` without Unicode format characters (category Cf).

    Why: a right-to-left override (U+202E) makes "Nice\u202egnp.exe" display as "Niceexe.png";
    the other bidirectional controls, zero-width spaces and joiners, the soft hyphen and the
    BOM hide or reorder what a reader sees in a page, a CSV cell or a player's M3U list. Names
    lose nothing readable: an emoji sequence joined by U+200D shows as its parts. ASCII holds
    no format character, so most names return at once.
    """
    if value.isascii():
        return value
    return "".join(c for c in value if unicodedata.category(c) != "Cf")


def ascii_int(value: str, max_digits: int = 18) -> int | None:
    """The integer written in ``value`` with ASCII digits only, else None.

    ``str.isdigit`` accepts superscripts ("²") that ``int`` then refuses with a ValueError, and
    ``int`` accepts other scripts' digits, spaces and underscores; request parameters need
    neither. ``max_digits`` keeps the number inside a 64-bit database column.
    """
    if 0 < len(value) <= max_digits and value.isascii() and value.isdigit():
        return int(value)
    return None
