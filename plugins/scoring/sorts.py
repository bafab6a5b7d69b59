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
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Float, Select, exists, func, literal, select, text, tuple_, union_all
from sqlalchemy.sql import ColumnElement

from engine.contacts.models import Contact
from engine.contacts.query import ContactSort
from engine.db import MAX_ROW_ID, db, utcnow
from plugins.scoring import decay, state
from plugins.scoring.models import ContactScore

MAX_GROUPS = 200
FEW = 5_000  # filters leaving fewer contacts than this: sort them all in SQL
FIRST_WINDOW = 256  # index entries a source reads in the first round; doubled each round
READ_LIMIT = 20_000  # index entries the merge reads before one ORDER BY is cheaper
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
    exponent = -(moment - now.epoch) / (now.half_life_days * decay.DAY)  # as decay.factor
    f = 2.0 ** max(-1000.0, min(1000.0, exponent))  # a forged cursor's moment stays a float
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

    def unscored(self) -> Bound | None:
        """This bound of fit group 0 as it applies to contacts without a row (fit 0, acc 0):
        all of them, those below an id, or none (None)."""
        if self.op == "all" or (self.op == "le" and 0.0 <= self.acc) or (
                self.op == "lt" and 0.0 < self.acc):
            return ALL
        return Bound("lt", 0.0, self.contact_id) if self.op == "lt" and self.acc == 0.0 else None


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


# --- where the rows come from -----------------------------------------------------------------

@dataclass
class Source:
    """Rows in key order from one index: a fit group's scores (`fit`), or the filtered contacts
    without a scores row (`fit` None, newest first), each after its `bound`. A round reads the
    next `window` index entries of each source and the filtered contacts among them; `frontier`
    is the last entry read (None once the source is used up)."""

    fit: int | None
    bound: Bound
    frontier: Row | None = None
    done: bool = False

    def entries(self, statement: Select[Any], window: int) -> Select[Any]:
        """The entry `window` places on: this round's frontier."""
        if self.fit is None:
            query = statement.with_only_columns(Contact.id, literal(0), literal(0.0, Float))
            if self.bound.op == "lt":
                query = query.where(Contact.id < self.bound.contact_id)
            return query.order_by(Contact.id.desc()).offset(window - 1).limit(1)
        query = select(S.contact_id, S.fit, S.acc).where(S.fit == self.fit)
        if (condition := self.bound.sql()) is not None:
            query = query.where(condition)
        return query.order_by(S.acc.desc(), S.contact_id.desc()).offset(window - 1).limit(1)

    def matched(self, statement: Select[Any], want: int) -> Select[Any]:
        """The filtered contacts from the bound to the frontier, at most `want`, in order."""
        if self.fit is None:
            query = statement.where(~exists().where(S.contact_id == Contact.id))
            if self.bound.op == "lt":
                query = query.where(Contact.id < self.bound.contact_id)
            if self.frontier is not None:
                query = query.where(Contact.id >= self.frontier.contact_id)
            return query.with_only_columns(Contact.id, literal(0), literal(0.0, Float)) \
                .order_by(Contact.id.desc()).limit(want)
        query = statement.join(ContactScore, ContactScore.contact_id == Contact.id) \
            .where(S.fit == self.fit)
        if (condition := self.bound.sql()) is not None:
            query = query.where(condition)
        if self.frontier is not None:
            query = query.where(tuple_(S.acc, S.contact_id)
                                >= (self.frontier.acc, self.frontier.contact_id))
        return query.with_only_columns(S.contact_id, S.fit, S.acc) \
            .order_by(S.acc.desc(), S.contact_id.desc()).limit(want)


def _each(parts: list[Select[Any]]) -> list[list[tuple[int, int, float]]]:
    """Run one statement per part as one UNION ALL; each part's rows, in order."""
    tagged = [select(literal(n).label("part"), *part.subquery().c)
              for n, part in enumerate(parts)]
    found: list[list[tuple[int, int, float]]] = [[] for _ in parts]
    for part, contact_id, fit, acc in db.session.execute(union_all(*tagged)):
        found[part].append((contact_id, fit, acc))
    return found


def _merged(statement: Select[Any], score: Score, fits: list[int], last: Key | None,
            want: int) -> list[Row] | None:
    """The first `want` rows after `last`: every source read a window at a time, until what
    is left of each is known to come after the page; None past `READ_LIMIT` entries.

    The windows bound the work where the filters and a fit group disagree (a stage filter,
    and a fit rule on that stage: the group holds none of the contacts asked for): a source is
    read only down to the page's last row, never to its end. Where that is still far (sorted
    by fit, the customers' high-fit groups above every lead), one ORDER BY over the filtered
    contacts costs less than reading on, and the caller sorts that way instead."""
    sources = [Source(fit, bound) for fit in fits
               if (bound := ALL if last is None else _bound(score, fit, last)) is not None]
    zero = ALL if last is None else _bound(score, 0, last)
    if zero is not None and (unscored := zero.unscored()) is not None:
        sources.append(Source(None, unscored))
    found: list[Row] = []
    window, read = FIRST_WINDOW, 0
    while sources:
        if read > READ_LIMIT:
            return None
        read += window * len(sources)
        for source, rows in zip(sources, _each([s.entries(statement, window) for s in sources]),
                                strict=True):
            source.frontier = _row(score, *rows[0]) if rows else None
        batches = _each([s.matched(statement, want) for s in sources])
        found = _best(found + [_row(score, *row) for rows in batches for row in rows], want)
        cutoff = found[-1].key if len(found) == want else None
        for source, rows in zip(sources, batches, strict=True):
            front = source.frontier
            source.done = front is None or len(rows) == want or (
                cutoff is not None and front.key <= cutoff)
            if front is not None:
                source.bound = Bound("lt", front.acc, front.contact_id)
        sources = [s for s in sources if not s.done]
        window *= 2
    return found


def _row(score: Score, contact_id: int, fit: int, acc: float) -> Row:
    return Row((score(fit, acc), acc, contact_id), fit, acc, contact_id)


def _ordered(statement: Select[Any], kind: str, score: Score, last: Key | None,
             want: int) -> list[Row]:
    """The same order as one ORDER BY over every filtered contact, the key computed in SQL
    (IEEE doubles there as here, so the same numbers): for a few thousand contacts, or when
    fit takes too many values to merge."""
    fit = func.coalesce(S.fit, 0)
    acc = func.coalesce(S.acc, 0.0)
    factor = score(0, 1.0) if kind == "score" else 0.0  # f: C(0, 1) = 1·f
    first = {"score": fit + acc * literal(factor, Float), "fit": fit, "engagement": acc}[kind]
    query = statement.outerjoin(ContactScore, ContactScore.contact_id == Contact.id)
    if last is not None:
        query = query.where(tuple_(first, acc, Contact.id) < last)
    rows = db.session.execute(query.with_only_columns(Contact.id, fit, acc).order_by(
        first.desc(), acc.desc(), Contact.id.desc()).limit(want))
    return [_row(score, *row) for row in rows]


def _few(statement: Select[Any]) -> bool:
    """Whether the filters leave fewer than `FEW` contacts (counting no further)."""
    counted = statement.with_only_columns(Contact.id).limit(FEW).subquery()
    return (db.session.scalar(select(func.count()).select_from(counted)) or 0) < FEW


def distinct_fits(cap: int = MAX_GROUPS) -> list[int]:
    """Every fit value a scores row holds, highest first (at most `cap` + 1 of them)."""
    return [int(v) for v in db.session.scalars(DISTINCT_FITS, {"cap": cap})]


# --- a page ------------------------------------------------------------------------------------

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
    found = None
    if len(fits) <= MAX_GROUPS and not _few(statement):
        found = _merged(statement, score, fits, last, want)
    if found is None:
        found = _ordered(statement, kind, score, last, want)
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
