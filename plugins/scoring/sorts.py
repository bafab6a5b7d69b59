"""The contact list sorted by score, fit or engagement, highest first: exact keyset pages that cost
the same on page 1 and page 20,000 of a million contacts.

Each sort orders contacts by a key `(C, acc, id)`, largest first:
- "score": C = fit + acc·f, the combined score now (f = 2^(−(t − epoch)/h), one f for everyone);
- "fit": C = fit, so fit first, then engagement;
- "engagement": C = acc: engagement is acc·f with one f, so acc's order is engagement's.
A contact without a `scoring_scores` row has fit 0 and acc 0 and sits where that puts it: after
every positive score, before every negative one, and among the other zeros by id.

Combined order changes with time, so no index can hold it; but among contacts of one fit it is
acc's order, which the index (fit, acc, contact_id) holds. Fit takes few values (sums of rules'
points): a loose index scan finds them (one index probe each); each fit group gives its first
per_page + 1 rows after the cursor from that index, and the groups are merged here. Past
`MAX_GROUPS` values the page falls back to sorting by the expression in SQL (exact, but it reads
every filtered contact). Within a group C never decreases as acc grows (float rounding is
monotone), so the index's (acc, id) order is the key's order and the merge is exact.

The key is computed here, in Python floats, never in SQL: for each group the rows after the
cursor are those below an exact threshold on (acc, id) found by bisection over the floats
(`_bound`), so SQL only compares stored values. The cursor holds the last row's fit, acc (by
repr, exactly) and id, and the moment the first page was made: every page of one walk uses that
moment's f, so a walk meets each contact once, however long it takes (a list opened at noon
keeps noon's order; its figures are still shown as of now).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import Select, exists, func, literal, select, text, tuple_, union_all
from sqlalchemy.sql import ColumnElement

from engine.contacts.models import Contact
from engine.contacts.query import ContactSort
from engine.db import MAX_ROW_ID, db, utcnow
from plugins.scoring import decay, state
from plugins.scoring.models import ContactScore

MAX_GROUPS = 200
MAX_FLOAT = 1.7976931348623157e308
S = ContactScore.__table__.c

# The distinct fit values, highest first, one index probe each (a "loose index scan": neither
# SQLite nor PostgreSQL skips through an index by itself). At most :cap + 1 are returned.
DISTINCT_FITS = text("""
WITH RECURSIVE fits(v, n) AS (
    SELECT (SELECT fit FROM scoring_scores ORDER BY fit DESC LIMIT 1), 1
    UNION ALL
    SELECT (SELECT fit FROM scoring_scores WHERE fit < fits.v ORDER BY fit DESC LIMIT 1), n + 1
    FROM fits WHERE fits.v IS NOT NULL AND fits.n <= :cap
)
SELECT v FROM fits WHERE v IS NOT NULL""")


class Cursor(NamedTuple):
    """The last row shown (its fit, acc and contact id) and the moment the walk orders by."""

    fit: int
    acc: float
    contact_id: int
    moment: float

    def text(self) -> str:
        return f"{self.fit}:{self.acc!r}:{self.contact_id}:{self.moment!r}"

    @classmethod
    def parse(cls, after: str) -> Cursor | None:
        """The cursor in `after`, or None for anything this module did not write."""
        parts = after.split(":")
        if len(parts) != 4:
            return None
        try:
            fit, acc, contact_id, moment = int(parts[0]), float(parts[1]), int(parts[2]), \
                float(parts[3])
        except ValueError:
            return None
        if abs(fit) > 2**31 or not 0 < contact_id <= MAX_ROW_ID or not (
                math.isfinite(acc) and math.isfinite(moment)):
            return None
        return cls(fit, acc, contact_id, moment)


Key = tuple[float, float, int]
Score = Callable[[int, float], float]  # C(fit, acc)


class Row(NamedTuple):
    """A candidate for the page: its key, and what its cursor would hold."""

    key: Key
    fit: int
    acc: float
    contact_id: int


def _best(rows: list[Row], want: int) -> list[Row]:
    """The first `want` rows by key, each contact once (a contact scored between two of the
    page's statements could be read both with and without a row)."""
    best: list[Row] = []
    seen: set[int] = set()
    for row in sorted(rows, key=lambda row: row.key, reverse=True):
        if row.contact_id not in seen:
            seen.add(row.contact_id)
            best.append(row)
            if len(best) == want:
                break
    return best


def _scorer(kind: str, moment: float) -> Score:
    """C(fit, acc) of the sort `kind` at `moment` (Unix seconds)."""
    if kind == "fit":
        return lambda fit, acc: float(fit)
    if kind == "engagement":
        return lambda fit, acc: acc
    now = state.read()
    f = 2.0 ** (-(moment - now.epoch) / (now.half_life_days * decay.DAY))  # decay.factor
    return lambda fit, acc: fit + acc * f


# --- the rows of a fit group after the cursor --------------------------------------------------

def _ordinal(x: float) -> int:
    """Floats as integers in the same order (the IEEE bits, negatives mirrored)."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _float(ordinal: int) -> float:
    bits = ordinal if ordinal >= 0 else (-ordinal) | (1 << 63)
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


class Bound(NamedTuple):
    """Which rows of a fit group come after the cursor: every row ("all"), those with
    acc <= `acc` ("le"), or those with (acc, id) < (`acc`, `contact_id`) ("lt")."""

    op: str
    acc: float = 0.0
    contact_id: int = 0

    def sql(self) -> ColumnElement[bool] | None:
        if self.op == "le":
            return S.acc <= self.acc
        if self.op == "lt":
            return tuple_(S.acc, S.contact_id) < (self.acc, self.contact_id)
        return None

    def unscored(self) -> tuple[bool, int | None]:
        """For contacts without a row (fit 0, acc 0): whether any come after the cursor, and
        below which id."""
        if self.op == "all" or (self.op == "le" and 0.0 <= self.acc) or (
                self.op == "lt" and 0.0 < self.acc):
            return True, None
        return (True, self.contact_id) if self.op == "lt" and self.acc == 0.0 else (False, None)


ALL = Bound("all")


def _bound(score: Score, fit: int, last: Key) -> Bound | None:
    """Which rows of fit group `fit` come after the row whose key is `last` (None: none).

    If C(fit, acc_l) equals the last key's C, the group ties with the cursor exactly where
    acc = acc_l, and the rows after it are those with (acc, id) < (acc_l, id_l). Otherwise a
    row comes after it exactly when (C(fit, acc), acc) < (C_l, acc_l), which holds for every
    acc up to some float a* (C never decreases as acc grows): a* is found by bisection over
    the floats in order, 64 steps at most, so no margin is guessed and no row is lost."""
    c_last, acc_last, id_last = last
    if score(fit, acc_last) == c_last:
        return Bound("lt", acc_last, id_last)

    def after(acc: float) -> bool:
        return (score(fit, acc), acc) < (c_last, acc_last)

    if not after(-MAX_FLOAT):
        return None
    if after(MAX_FLOAT):
        return ALL
    low, high = _ordinal(-MAX_FLOAT), _ordinal(MAX_FLOAT)  # after(low), not after(high)
    while high - low > 1:
        middle = (low + high) // 2
        if after(_float(middle)):
            low = middle
        else:
            high = middle
    return Bound("le", _float(low))


# --- a page ------------------------------------------------------------------------------------

def _groups(statement: Select[Any], score: Score, fits: list[int], last: Key | None,
            want: int) -> list[Row]:
    """The first `want` rows after `last` of each fit group, one UNION ALL of index ranges."""
    joined = statement.join(ContactScore, ContactScore.contact_id == Contact.id)
    parts = []
    for fit in fits:
        bound = ALL if last is None else _bound(score, fit, last)
        if bound is None:
            continue
        part = joined.where(S.fit == fit)
        if (condition := bound.sql()) is not None:
            part = part.where(condition)
        parts.append(part.with_only_columns(S.contact_id, S.fit, S.acc)
                     .order_by(S.acc.desc(), S.contact_id.desc()).limit(want).subquery())
    if not parts:
        return []
    rows = db.session.execute(union_all(*(select(*part.c) for part in parts)))
    return [Row((score(fit, acc), acc, contact_id), fit, acc, contact_id)
            for contact_id, fit, acc in rows]


def _unscored(statement: Select[Any], score: Score, last: Key | None, want: int) -> list[Row]:
    """Contacts without a scores row (fit 0, acc 0) after `last`, newest first."""
    bound = ALL if last is None else _bound(score, 0, last)
    allowed, below = (False, None) if bound is None else bound.unscored()
    if not allowed:
        return []
    query = statement.where(~exists().where(S.contact_id == Contact.id))
    if below is not None:
        query = query.where(Contact.id < below)
    ids = db.session.scalars(query.with_only_columns(Contact.id)
                             .order_by(Contact.id.desc()).limit(want))
    zero = score(0, 0.0)
    return [Row((zero, 0.0, contact_id), 0, 0.0, contact_id) for contact_id in ids]


def _fallback(statement: Select[Any], kind: str, score: Score, last: Key | None,
              want: int) -> list[Row]:
    """The same order as one ORDER BY over every filtered contact: for many fit values."""
    fit = func.coalesce(S.fit, 0)
    acc = func.coalesce(S.acc, 0.0)
    factor = score(0, 1.0) if kind == "score" else 0.0  # f: C(0, 1) = 1·f
    combined = {"score": fit + acc * literal(factor), "fit": fit, "engagement": acc}[kind]
    query = statement.outerjoin(ContactScore, ContactScore.contact_id == Contact.id)
    if last is not None:
        query = query.where(tuple_(combined, acc, Contact.id) < last)
    rows = db.session.execute(query.with_only_columns(Contact.id, fit, acc).order_by(
        combined.desc(), acc.desc(), Contact.id.desc()).limit(want))
    return [Row((score(f, a), a, contact_id), f, a, contact_id) for contact_id, f, a in rows]


def distinct_fits(cap: int = MAX_GROUPS) -> list[int]:
    """Every fit value a scores row holds, highest first (at most `cap` + 1 of them)."""
    return [int(v) for v in db.session.scalars(DISTINCT_FITS, {"cap": cap})]


def page(kind: str, statement: Select[Any], after: str,
         per_page: int) -> tuple[list[Contact], str | None]:
    """One page of the filtered `statement` in the order of `kind`, and the next cursor."""
    cursor = Cursor.parse(after) if after else None
    moment = cursor.moment if cursor else decay.seconds(utcnow())
    score = _scorer(kind, moment)
    last = None if cursor is None else (score(cursor.fit, cursor.acc), cursor.acc,
                                        cursor.contact_id)
    want = per_page + 1
    fits = distinct_fits()
    if len(fits) > MAX_GROUPS:
        found = _fallback(statement, kind, score, last, want)
    else:
        found = _best(_groups(statement, score, fits, last, want), want)
        zero = (score(0, 0.0), 0.0)
        if len(found) < want or found[-1].key[:2] <= zero:  # the zeros may reach this page
            found = _best(found + _unscored(statement, score, last, want), want)
    shown = found[:per_page]
    contacts = {c.id: c for c in db.session.scalars(
        select(Contact).where(Contact.id.in_([row.contact_id for row in shown])))}
    rows = [contacts[row.contact_id] for row in shown if row.contact_id in contacts]
    if len(found) <= per_page:
        return rows, None
    last_row = shown[-1]
    return rows, Cursor(last_row.fit, last_row.acc, last_row.contact_id, moment).text()


def _sort(kind: str) -> Callable[[Select[Any], str, int], tuple[list[Contact], str | None]]:
    return lambda statement, after, per_page: page(kind, statement, after, per_page)


SORTS = [ContactSort("score", "Score, highest first", _sort("score")),
         ContactSort("fit", "Fit, highest first", _sort("fit")),
         ContactSort("engagement", "Engagement, highest first", _sort("engagement"))]
