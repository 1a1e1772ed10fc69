"""The group's tokens, signed with one time stamp, are each exactly the token ``issue`` gives
that member, and each verifies for its own member only."""
from __future__ import annotations

import time

from app.api import feedback_tokens


def test_the_groups_tokens_are_each_members_own(app):
    pid = "0123456789abcdef" * 2
    members = [124, 7, 124, 99999, 3]
    with app.app_context():
        for now in (time.time() - 60, time.time() - 3 * 24 * 3600):
            tokens = feedback_tokens.issue_all(pid, members, now=now)
            assert list(tokens) == [124, 7, 99999, 3]
            assert tokens == {u: feedback_tokens.issue(pid, u, now=now) for u in tokens}
            for user_id, token in tokens.items():
                assert feedback_tokens.problem(token, pid, user_id) is None
                assert feedback_tokens.problem(token, pid, user_id + 1) is not None
                assert feedback_tokens.problem(token, pid[::-1], user_id) is not None
        issued = feedback_tokens.issue_all(pid, [5, 6])
        assert all(feedback_tokens.problem(t, pid, u) is None for u, t in issued.items())
