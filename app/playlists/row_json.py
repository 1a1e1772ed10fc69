"""The prediction row's numbers at four decimals (``rounded``, also what the pages show of a
stored playlist) and its JSON columns as text, written here instead of by ``json.dumps``.

Why: the row's member scores (a float per member and track) and its attribution are most of
the JSON a served playlist stores, and ``json.dumps`` formats each float with ``repr`` and
walks a list of dicts built only to be encoded. The text made here is the same text, character
for character, that SQLAlchemy's JSON column would have written from ``rounded`` values and
``attribution`` dicts (tests compare the two on random and edge inputs), so every reader of
the row is untouched. Anything outside the fast path (a NaN, a liking outside 0-1, a member id
that is not a plain int) is handed to ``json.dumps`` as before.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

import numpy as np


class JSONText(str):
    """A value already serialised as JSON: the row's INSERT binds it as it is."""
    __slots__ = ()


# repr of k / 10⁴ for every four-decimal liking in [0, 1]; ``rounded`` gives exactly those
# floats (rint of x·10⁴, divided by 10⁴), so indexing by the rint is the same text as repr.
_FOUR_DECIMALS = np.array([repr(k / 1e4) for k in range(10_001)], dtype=object)


def scores_json(values: np.ndarray | None) -> JSONText | None:
    """``json.dumps(rounded(values))`` for a float32 vector or matrix of likings; None for
    None."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.dtype == np.float32 and values.ndim in (1, 2) and values.size:
        steps = _steps(values)
        # no sign bit (a -0.0 would be written "-0.0"), none above 1, no NaN (max is NaN)
        if not np.signbit(steps).any() and steps.max() <= 10_000:
            text = _FOUR_DECIMALS[steps.astype(np.intp)].tolist()
            if values.ndim == 1:
                return JSONText("[" + ", ".join(text) + "]")
            return JSONText("[[" + "], [".join([", ".join(row) for row in text]) + "]]")
    return JSONText(json.dumps(rounded(values)))


def rounded(values: np.ndarray | None):
    """Four decimals (once, here): plenty for 0-1 likings, and what the prediction stores.
    ``tolist`` gives the same Python floats as ``float(x)`` per element, at C speed.

    The model's numbers are float32, and a float32 times 10⁴ is exact in float64 (24 + 10
    significant bits), so ``rint`` (half to even) of it and a division by 10⁴ (correctly
    rounded) give exactly Python's ``round(x, 4)``, in one pass instead of a call per number
    (tests/playlists/test_serving.py compares them)."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.dtype == np.float32:
        return (_steps(values) / 1e4).tolist()
    if values.ndim == 1:
        return [round(x, 4) for x in values.tolist()]
    return [[round(x, 4) for x in row] for row in values.tolist()]


def _steps(values: np.ndarray) -> np.ndarray:
    """A float32 array's values in whole ten-thousandths (float64)."""
    return np.rint(values.astype(np.float64) * 1e4)


def attribution_json(members: list[int], for_members, turns, reasons) -> JSONText:
    """``json.dumps`` of the stored attribution: per track ``{"for": sorted user ids, "turn":
    user id or null}`` and, where a reason was given, its words and the member it speaks for."""
    if not all(type(m) is int for m in members):
        return JSONText(json.dumps(_attribution_dicts(members, for_members, turns, reasons)))
    ids = [str(m) for m in members]
    key = members.__getitem__  # the members' positions in the order of their user ids
    parts = []
    for fors, turn, said in zip(for_members, turns, reasons):
        head = ('{"for": [' + ", ".join([ids[j] for j in sorted(fors, key=key)])
                + '], "turn": ' + (ids[turn] if turn >= 0 else "null"))
        if said is None:
            parts.append(head + "}")
        else:
            parts.append(head + ', "reason": ' + encode_basestring_ascii(said[1])
                         + ', "reason_member": ' + ("null" if said[0] is None else ids[said[0]])
                         + "}")
    return JSONText("[" + ", ".join(parts) + "]")


def _attribution_dicts(members, for_members, turns, reasons) -> list[dict]:
    """The attribution as the dicts it stands for (what ``attribution_json`` writes)."""
    return [{"for": sorted(members[j] for j in fors),
             "turn": members[turn] if turn >= 0 else None}
            | ({"reason": said[1], "reason_member": None if said[0] is None else members[said[0]]}
               if said is not None else {})
            for fors, turn, said in zip(for_members, turns, reasons)]
