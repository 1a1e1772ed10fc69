"""The party simulator: live parties on the demo's hidden taste (``GroundTruth.affinity``).

Each party has 5-10 guests over ``TRACKS`` tracks; three are there from the start, the others
arrive at random times, and some leave at random times. A present guest skips a track whose
true affinity is below their own 30th percentile (of the catalogue) and likes one in their
top 2 %. The same parties are played by four queues:

(a) ``start``: one playlist built at the start for the first guests (``/predict``'s path);
(b) ``fresh``: a fresh ``/predict`` playlist for those present whenever someone arrives or
    leaves (it learns nothing from skips and likes);
(c) ``live``: the party planner (``app.recommender.party_planner``) re-planning on every join, leave,
    skip and like, with the skips and likes folded into the guests' tastes; also without the
    feedback, with skips only and with likes only, to show what each adds;
(d) ``oracle``: knows the true taste: the least served present guest takes, from their true
    favourites, the track best for those present.

Everything runs in memory on the recommender (the planner is the service's), so hundreds of
parties take a minute or two.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.recommender import party_planner as planner
from app.recommender.continuation import SoFar
from app.recommender.members import Member
from app.recommender.ordering import listening_order
from app.recommender.strategies import Rules

TRACKS = 45
START_GUESTS = 3
SKIP_PERCENTILE = 30
LIKE_SHARE = 0.02


@dataclass
class SimParty:
    users: list[int]          # user ids, guest key = position
    arrive: list[int]         # track position at which each guest arrives
    leave: list[int]          # track position at which each guest leaves (TRACKS: stays)


@dataclass
class Truth:
    """Per guest of a party: true affinity over the catalogue, skip and like thresholds."""

    aff: np.ndarray           # guests x catalogue
    skip_below: np.ndarray
    love_above: np.ndarray


@dataclass
class Outcome:
    played: list[int] = field(default_factory=list)
    present: list[tuple[int, ...]] = field(default_factory=list)


def make_parties(user_ids: np.ndarray, n: int, seed: int) -> list[SimParty]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(5, 11))
        users = [int(u) for u in rng.choice(user_ids, size, replace=False)]
        arrive = [0] * START_GUESTS + sorted(int(rng.integers(1, TRACKS - 9))
                                             for _ in range(size - START_GUESTS))
        leave = []
        for a in arrive:
            if rng.random() < 0.4:  # some leave early, after at least five tracks
                leave.append(int(rng.integers(min(a + 5, TRACKS - 1), TRACKS)))
            else:
                leave.append(TRACKS)
        leave[0] = TRACKS  # someone is always there: a party with nobody left is over
        out.append(SimParty(users, arrive, leave))
    return out


def truth_for(gt, users: list[int], track_ids: np.ndarray, gt_cols: np.ndarray) -> Truth:
    aff = np.zeros((len(users), len(track_ids)), np.float32)
    ok = gt_cols >= 0
    urows = [gt._user_row[int(u)] for u in users]
    logits = (gt.scale * (gt.user_taste[urows] @ gt.track_vectors[gt_cols[ok]].T)
              + gt.track_bias[gt_cols[ok]][None, :] + gt.offset)
    aff[:, ok] = 1.0 / (1.0 + np.exp(-logits))
    skip = np.percentile(aff[:, ok], SKIP_PERCENTILE, axis=1)
    love = np.quantile(aff[:, ok], 1.0 - LIKE_SHARE, axis=1)
    return Truth(aff, skip, love)


def present_at(p: SimParty, t: int) -> tuple[int, ...]:
    return tuple(g for g in range(len(p.users)) if p.arrive[g] <= t < p.leave[g])


# ----- the four queues -----

def run_start(rec, p: SimParty, truth: Truth, members: list[Member]) -> Outcome:
    first = present_at(p, 0)
    order = _predict(rec, [members[g] for g in first], TRACKS, [])
    return _outcome(p, order)


def run_fresh(rec, p: SimParty, truth: Truth, members: list[Member]) -> Outcome:
    played: list[int] = []
    queue: list[int] = []
    last = None
    for t in range(TRACKS):
        here = present_at(p, t)
        if here != last or not queue:
            queue = _predict(rec, [members[g] for g in here], TRACKS - t, played)
            last = here
        played.append(queue.pop(0))
    return _outcome(p, played)


def run_live(rec, p: SimParty, truth: Truth, members: list[Member], *, skips: bool = True,
             likes: bool = True, ahead: int = 10) -> Outcome:
    guests = [planner.PartyGuest(g, members[g], False) for g in range(len(p.users))]
    fixed: list[planner.Played] = []
    queue: list[tuple[int, int | None]] = []
    last = None
    changed = True
    for t in range(TRACKS):
        here = present_at(p, t)
        for g in guests:
            g.present = g.key in here
        if here != last or changed or len(queue) < 5:
            plan = planner.plan(rec, guests, fixed, ahead)
            queue = list(zip(plan.indices, plan.turns))
            last = here
        i, turn = queue.pop(0)
        fixed.append(planner.Played(i, turn, here))
        changed = False
        for g in here:
            a = truth.aff[g, i]
            if skips and a < truth.skip_below[g]:
                guests[g].skipped.append(i)
                changed = True
            elif likes and a >= truth.love_above[g]:
                guests[g].liked.append(i)
                changed = True
    return _outcome(p, [f.index for f in fixed])


def run_oracle(rec, p: SimParty, truth: Truth) -> Outcome:
    played: list[int] = []
    used = np.zeros(truth.aff.shape[1], bool)
    got = np.zeros(len(p.users))
    heard = np.zeros(len(p.users))
    fav = truth.aff >= truth.love_above[:, None]
    for t in range(TRACKS):
        here = list(present_at(p, t))
        mean = np.where(heard[here] > 0, got[here] / np.maximum(heard[here], 1), -1.0)
        j = here[int(np.argmin(mean))]  # newcomers (nothing heard) first
        room = truth.aff[here].mean(axis=0)
        cand = fav[j] & ~used
        if played:
            cand &= rec.artist != rec.artist[played[-1]]
        if not cand.any():
            cand = ~used
        i = int(np.argmax(np.where(cand, room, -np.inf)))
        played.append(i)
        used[i] = True
        got[here] += truth.aff[here, i]
        heard[here] += 1
    return _outcome(p, played)


def _predict(rec, members: list[Member], length: int, excluded: list[int]) -> list[int]:
    """``/predict``'s playlist for ``members`` (the default strategy, in listening order),
    without the ``excluded`` tracks."""
    result = rec.plan(members, Rules(length=length), so_far=SoFar(excluded=list(excluded)),
                      exact=True)
    idx = np.asarray(result.indices, np.int64)
    cat = rec.catalogue
    order = listening_order(result.for_members, rec.artist[idx],
                            cat.audio_feature("tempo", idx), cat.audio_feature("energy", idx),
                            len(members))
    return [result.indices[k] for k in order]


def _outcome(p: SimParty, played: list[int]) -> Outcome:
    return Outcome(played[:TRACKS], [present_at(p, t) for t in range(TRACKS)])


# ----- measures -----

def measures(p: SimParty, truth: Truth, out: Outcome) -> dict[str, float]:
    """Per party: share of tracks most of the room dislikes; each guest's share of favourites
    while present (mean over guests); the least happy guest (mean true affinity over what
    played while they were there); a newcomer's wait for their first loved track."""
    played = np.asarray(out.played)
    disliked = 0
    per_guest_aff, per_guest_fav = [], []
    waits = []
    for t, i in enumerate(out.played):
        here = list(out.present[t])
        dis = truth.aff[here, i] < truth.skip_below[here]
        disliked += int(2 * dis.sum() > len(here))
    for g in range(len(p.users)):
        at = [t for t in range(TRACKS) if g in out.present[t]]
        if not at:
            continue
        a = truth.aff[g, played[at]]
        loved = a >= truth.love_above[g]
        per_guest_aff.append(float(a.mean()))
        per_guest_fav.append(float(loved.mean()))
        if p.arrive[g] > 0:
            first = np.flatnonzero(loved)
            waits.append(float(first[0]) if len(first) else float(len(at)))
    return {"disliked_share": disliked / TRACKS,
            "favourite_share": float(np.mean(per_guest_fav)),
            "least_happy": float(np.min(per_guest_aff)),
            "newcomer_wait": float(np.mean(waits)) if waits else float("nan")}


def skip_effect(rec, parties: list[SimParty], truths: list[Truth],
                members_of: list[list[Member]], ahead: int = 10) -> dict[str, float]:
    """How much one skip moves the next picks: after five tracks, the next ``ahead`` planned
    without and with one guest's skip of the track just played. Share of the next picks that
    changed, and the skipping guest's true affinity of the next picks before and after."""
    changed, before, after, near_before, near_after = [], [], [], [], []
    v = rec.items_t[:-2].T
    for p, truth, members in zip(parties, truths, members_of):
        guests = [planner.PartyGuest(g, members[g], p.arrive[g] == 0)
                  for g in range(len(p.users))]
        first = planner.plan(rec, guests, [], 6)
        here = present_at(p, 0)
        fixed = [planner.Played(i, t, here) for i, t in zip(first.indices[:5], first.turns)]
        skipped = fixed[-1].index
        g = here[0]
        base = planner.plan(rec, guests, fixed, ahead)
        guests[g].skipped.append(skipped)
        moved = planner.plan(rec, guests, fixed, ahead)
        changed.append(1.0 - len(set(base.indices) & set(moved.indices)) / ahead)
        before.append(float(truth.aff[g, base.indices].mean()))
        after.append(float(truth.aff[g, moved.indices].mean()))
        sim = v @ v[skipped] / (np.linalg.norm(v, axis=1) * np.linalg.norm(v[skipped]) + 1e-9)
        near_before.append(float(sim[base.indices].mean()))
        near_after.append(float(sim[moved.indices].mean()))
    return {"next_picks_changed": float(np.mean(changed)),
            "skipper_affinity_before": float(np.mean(before)),
            "skipper_affinity_after": float(np.mean(after)),
            "similarity_to_skipped_before": float(np.mean(near_before)),
            "similarity_to_skipped_after": float(np.mean(near_after))}


VARIANTS = ("a_start", "b_fresh", "c_live", "c_live_no_feedback", "c_live_skips_only",
            "c_live_likes_only", "d_oracle")


def simulate(rec, gt, n_parties: int = 100, seed: int = 0, user_ids: np.ndarray | None = None,
             progress=None) -> dict:
    cat = rec.catalogue
    track_ids = cat.item_ids.astype(str)
    gt_cols = np.array([gt._track_row.get(t, -1) for t in track_ids.tolist()], np.int64)
    if user_ids is None:
        known = set(int(u) for u in gt.user_ids.tolist())
        user_ids = np.array([u for u in rec.user_ids.external.tolist() if int(u) in known])
    parties = make_parties(user_ids, n_parties, seed)
    rows: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    truths, members_of = [], []
    for k, p in enumerate(parties):
        truth = truth_for(gt, p.users, track_ids, gt_cols)
        members = [rec.member(u) for u in p.users]
        truths.append(truth)
        members_of.append(members)
        runs = {
            "a_start": run_start(rec, p, truth, members),
            "b_fresh": run_fresh(rec, p, truth, members),
            "c_live": run_live(rec, p, truth, members),
            "c_live_no_feedback": run_live(rec, p, truth, members, skips=False, likes=False),
            "c_live_skips_only": run_live(rec, p, truth, members, likes=False),
            "c_live_likes_only": run_live(rec, p, truth, members, skips=False),
            "d_oracle": run_oracle(rec, p, truth),
        }
        for name, out in runs.items():
            assert len(set(out.played)) == len(out.played) == TRACKS, name
            rows[name].append(measures(p, truth, out))
        if progress:
            progress(k + 1, len(parties))
    table = {name: {m: float(np.nanmean([r[m] for r in rs])) for m in rs[0]}
             for name, rs in rows.items()}
    return {"parties": n_parties, "seed": seed, "tracks": TRACKS, "table": table,
            "skip_effect": skip_effect(rec, parties[:50], truths[:50], members_of[:50]),
            "targets": targets(table)}


def targets(t: dict) -> dict[str, bool]:
    c, b, a, d = t["c_live"], t["b_fresh"], t["a_start"], t["d_oracle"]
    return {
        "least_happy >= 0.9 x oracle": c["least_happy"] >= 0.9 * d["least_happy"],
        "newcomer_wait <= 1.5": c["newcomer_wait"] <= 1.5,
        "disliked <= fresh + 0.01": c["disliked_share"] <= b["disliked_share"] + 0.01,
        "disliked <= 0.5 x start": c["disliked_share"] <= 0.5 * a["disliked_share"],
    }


def format_result(result: dict) -> str:
    names = ["disliked_share", "favourite_share", "least_happy", "newcomer_wait"]
    lines = [f"{result['parties']} parties of 5-10 guests over {result['tracks']} tracks "
             f"(seed {result['seed']}), scored with the hidden taste",
             f"{'':<22}" + "".join(f"{n:>17}" for n in names)]
    for name, vals in result["table"].items():
        lines.append(f"{name:<22}" + "".join(f"{vals[n]:>17.4f}" for n in names))
    lines.append("")
    lines.append("one skip (after five tracks, the next 10 planned again):")
    for k, v in result["skip_effect"].items():
        lines.append(f"  {k:<30} {v:.4f}")
    lines.append("")
    for k, ok in result["targets"].items():
        lines.append(f"  target {k:<32} {'met' if ok else 'NOT met'}")
    return "\n".join(lines)
