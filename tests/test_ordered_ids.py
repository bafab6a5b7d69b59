"""Keys that sort by the time they were made (`engine.db.ordered_id`): new rows land at the end
of their indexes."""
from __future__ import annotations

import re

from engine.contacts import visitors
from engine.db import id_prefix, ordered_id


def test_ids_sort_by_the_time_they_were_made_and_never_repeat():
    times = [1_700_000_000.0 + step * 0.001 for step in range(2000)]
    ids = [ordered_id(at) for at in times]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.startswith(id_prefix(at)) for i, at in zip(ids, times, strict=True))
    same_moment = {ordered_id(1_700_000_000.0) for _ in range(1000)}
    assert len(same_moment) == 1000  # 80 random bits each


def test_every_id_made_before_a_moment_sorts_below_its_prefix():
    moment = 1_700_000_000.001
    assert ordered_id(moment - 0.001) < id_prefix(moment) < ordered_id(moment)


def test_a_new_browser_id_is_unguessable_and_sorts_after_older_ones():
    older = ordered_id(1_600_000_000.0)
    made = [visitors.new_visitor_id() for _ in range(200)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) and i > older for i in made)
    assert len(set(made)) == 200
    assert len({i[12:] for i in made}) == 200  # the random part differs, not just the time
