"""A stored prediction as the playlist pages (public and admin) and the downloads show it.

Everything is read from the prediction row (track ids, members, per-track member scores, member
fit), so a permalink shows exactly what was served, even after the model has moved on. Only the
catalogue details (names, genres, durations) are looked up again.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from app.common.text import clean_text
from app.db import Prediction
from app.db.lookups import existing_users, tracks_by_id
from app.recommender.reasons import GROUP as GROUP_REASON
from app.web.templating import heat

MEMBER_COLOURS = 8


@dataclass(frozen=True)
class Score:
    value: float | None

    @property
    def percent(self) -> str:
        return "–" if self.value is None else f"{round(self.value * 100)}%"

    @property
    def heat(self) -> str:
        return heat(self.value)

    @property
    def width(self) -> str:
        """Bar length class in steps of 5% (``w-0`` ... ``w-100``)."""
        if self.value is None:
            return "w-0"
        return f"w-{min(100, max(0, 5 * round(self.value * 20)))}"


def first_name(name: str, user_id: int) -> str:
    return name.split()[0] if name.split() else f"User {user_id}"


def member_labels(members: list[tuple[int, str]]) -> list[str]:
    """One label per member, unique within the group: the first name, or the first name and
    the id where first names repeat (demo groups of six share a first name half the time, and
    initials a fifth of the time, so neither alone tells people apart)."""
    firsts = [first_name(name, uid) for uid, name in members]
    seen = Counter(f.casefold() for f in firsts)
    return [f if seen[f.casefold()] == 1 else f"{f} #{uid}"
            for f, (uid, _) in zip(firsts, members)]


@dataclass(frozen=True)
class MemberView:
    user_id: int
    name: str
    fit: Score
    index: int = 0  # position in the group: picks the member's chip colour
    # unique within the group; every table, chip, legend and download of the playlist uses it
    label: str = ""

    @property
    def first_name(self) -> str:
        return first_name(self.name, self.user_id)

    @property
    def colour(self) -> str:
        """A CSS class per member (a small palette, reused past its size: the label tells)."""
        return f"mc-{self.index % MEMBER_COLOURS}"

    @property
    def full(self) -> str:
        """Full name and id, for tooltips and the legend."""
        return f"{self.name} (#{self.user_id})"


@dataclass(frozen=True)
class Row:
    position: int
    track_id: str
    name: str
    artist: str
    genres: list[str]
    duration_ms: int
    explicit: bool
    member_scores: list[Score]  # one per member, in the order of the view's members
    # whom the track is for (the turn member first), and the member whose turn chose it
    for_members: list[MemberView] = field(default_factory=list)
    turn_of: MemberView | None = None
    # why it is here: "group" (a compromise, nobody's favourite) or a few words for
    # ``reason_member``; None for playlists stored before reasons existed
    reason: str | None = None
    reason_member: MemberView | None = None

    @property
    def is_compromise(self) -> bool:
        return self.reason == GROUP_REASON

    @property
    def reason_text(self) -> str:
        """The reason as shown: "for the whole group", or "Ann: you played this artist 4 times"."""
        if self.reason is None:
            return ""
        if self.is_compromise:
            return "for the whole group: a compromise, nobody's favourite"
        who = self.reason_member.first_name if self.reason_member else ""
        return f"{who}: {self.reason}" if who else self.reason

    def is_for(self, member: MemberView) -> bool:
        return any(m.user_id == member.user_id for m in self.for_members)


@dataclass(frozen=True)
class PlaylistView:
    prediction: Prediction
    members: list[MemberView]
    rows: list[Row]
    taste_match: list[list[Score]] | None
    taste_note: str | None

    @property
    def total_ms(self) -> int:
        return sum(r.duration_ms for r in self.rows)

    @property
    def has_scores(self) -> bool:
        return any(s.value is not None for r in self.rows for s in r.member_scores)

    @property
    def has_attribution(self) -> bool:
        return any(r.for_members for r in self.rows)

    @property
    def title(self) -> str:
        """'Marcin, Natalia and 4 others': every name for small groups, two for larger ones."""
        return group_title([m.label for m in self.members])


def group_title(names: list[str], shown: int = 2) -> str:
    if len(names) <= shown + 1:
        return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    rest = len(names) - shown
    return f"{', '.join(names[:shown])} and {rest} other{'s' if rest > 1 else ''}"


def members_of(prediction: Prediction) -> list[int]:
    """Scoring order; rows logged before ``members`` existed fall back to requester + others."""
    stored = getattr(prediction, "members", None)
    if stored:
        return [int(m) for m in stored]
    seen: list[int] = []
    for uid in [prediction.user_id, *(prediction.other_users or [])]:
        if int(uid) not in seen:
            seen.append(int(uid))
    return seen


def playlist_view(prediction: Prediction,
                  taste_match: list[list[float]] | None = None,
                  taste_note: str | None = None) -> PlaylistView:
    member_ids = members_of(prediction)
    users = existing_users(member_ids)
    fits = prediction.member_fit or [None] * len(member_ids)
    # clean once: the labels, chips, legend and every download are made from these names
    names = [clean_text(users[uid].name) if uid in users else f"User {uid}" for uid in member_ids]
    labels = member_labels(list(zip(member_ids, names)))
    members = [MemberView(uid, name, Score(fit), index, label)
               for index, (uid, name, fit, label)
               in enumerate(zip(member_ids, names, fits, labels))]
    by_id = {m.user_id: m for m in members}
    attribution = prediction.attribution or []
    tracks = tracks_by_id(list(prediction.track_ids or []))
    all_scores = prediction.member_scores or []
    rows: list[Row] = []
    for pos, tid in enumerate(prediction.track_ids or [], start=1):
        track = tracks.get(tid)
        per_member = all_scores[pos - 1] if pos - 1 < len(all_scores) and all_scores[pos - 1] else []
        scores = [Score(per_member[i] if i < len(per_member) else None)
                  for i in range(len(member_ids))]
        for_members, turn_of = _attributed(attribution, pos - 1, by_id)
        reason, reason_member = _reason(attribution, pos - 1, by_id)
        if track is None:  # deleted from the catalogue since; keep the slot visible
            rows.append(Row(pos, tid, "(track no longer in the catalogue)", "", [], 0, False,
                            scores, for_members, turn_of, reason, reason_member))
            continue
        rows.append(Row(pos, tid, track.name, track.artist.name if track.artist else "",
                        sorted(g.name for g in (track.artist.genres if track.artist else [])),
                        track.duration_ms, bool(track.explicit), scores, for_members, turn_of,
                        reason, reason_member))
    matrix = ([[Score(v) for v in row] for row in taste_match] if taste_match else None)
    return PlaylistView(prediction, members, rows, matrix, taste_note)


def _attributed(attribution: list, i: int, by_id: dict[int, MemberView]
                ) -> tuple[list[MemberView], MemberView | None]:
    """Track ``i``'s members from the stored attribution, the turn member first; ids that are
    not members of the group are ignored (the row is data, not trusted to be consistent)."""
    entry = attribution[i] if i < len(attribution) and isinstance(attribution[i], dict) else {}
    turn = by_id.get(entry.get("turn")) if isinstance(entry.get("turn"), int) else None
    ids = [u for u in entry.get("for") or [] if isinstance(u, int) and u in by_id]
    members = sorted({by_id[u].user_id: by_id[u] for u in ids}.values(), key=lambda m: m.index)
    if turn is not None:
        members = [turn] + [m for m in members if m.user_id != turn.user_id]
    return members, turn


def _reason(attribution: list, i: int, by_id: dict[int, MemberView]
            ) -> tuple[str | None, MemberView | None]:
    """Track ``i``'s stored reason and the member it speaks for (a stored row is data: a
    reason that is not a short string, or a member not in the group, is dropped)."""
    entry = attribution[i] if i < len(attribution) and isinstance(attribution[i], dict) else {}
    reason = entry.get("reason")
    if not isinstance(reason, str) or len(reason) > 120:
        return None, None
    who = entry.get("reason_member")
    member = by_id.get(who) if isinstance(who, int) else None
    if reason != GROUP_REASON and member is None:
        return None, None
    return reason, member


def as_json(view: PlaylistView) -> str:
    p = view.prediction
    doc = {
        "prediction_id": p.id,
        "created_at": _iso(p.created_at),
        "model": p.model,
        "model_version": p.model_version,
        "strategy": p.strategy,
        "exclude_explicit": bool(p.exclude_explicit),
        "members": [{"user_id": m.user_id, "name": clean_text(m.name),
                     "label": clean_text(m.label), "fit": m.fit.value}
                    for m in view.members],
        "total_duration_ms": view.total_ms,
        "tracks": [{
            "position": r.position, "id": r.track_id, "name": clean_text(r.name),
            "artist": clean_text(r.artist), "genres": [clean_text(g) for g in r.genres], "duration_ms": r.duration_ms, "explicit": r.explicit,
            "member_scores": {str(m.user_id): s.value
                              for m, s in zip(view.members, r.member_scores)},
            "for_members": (sorted(m.user_id for m in r.for_members) if p.attribution is not None
                            else None),
            "for_labels": ([m.label for m in sorted(r.for_members, key=lambda m: m.user_id)]
                           if p.attribution is not None else None),
            "turn_of": r.turn_of.user_id if r.turn_of else None,
            "reason": clean_text(r.reason) if r.reason is not None else None,
            "reason_member": r.reason_member.user_id if r.reason_member else None,
        } for r in view.rows],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _csv_cell(value: object) -> object:
    """Spreadsheets execute cells starting with = + - @: a leading quote keeps them text."""
    if isinstance(value, str):
        value = clean_text(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def as_csv(view: PlaylistView) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["position", "track_id", "name", "artist", "genres", "duration_ms", "explicit",
                     *[_csv_cell(m.label) for m in view.members], "for_members", "turn_of",
                     "reason"])
    for r in view.rows:
        writer.writerow([r.position, r.track_id, _csv_cell(r.name), _csv_cell(r.artist),
                         _csv_cell("; ".join(r.genres)), r.duration_ms, int(r.explicit),
                         *["" if s.value is None else f"{s.value:.4f}" for s in r.member_scores],
                         _csv_cell("; ".join(m.label for m in r.for_members)),
                         _csv_cell(r.turn_of.label if r.turn_of else ""),
                         _csv_cell(r.reason_text)])
    return out.getvalue()


def as_m3u(view: PlaylistView) -> str:
    """Extended M3U; the ids are Spotify-style, so each entry is a ``spotify:track:`` URI."""
    lines = ["#EXTM3U", f"#PLAYLIST:Pozytywka group playlist {view.prediction.id}"]
    # comment lines (players skip them): who is who, and whom each track is for
    lines += [clean_text(f"# member {m.label}: {m.full}") for m in view.members]
    for r in view.rows:
        title = clean_text(f"{r.artist} - {r.name}")  # no line break can start a new entry
        if r.for_members:
            lines.append(clean_text("# for: " + ", ".join(m.label for m in r.for_members)))
        lines.append(f"#EXTINF:{round(r.duration_ms / 1000)},{title}")
        lines.append(f"spotify:track:{r.track_id}")
    return "\n".join(lines) + "\n"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
