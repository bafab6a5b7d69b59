"""Finding contacts: search anywhere in name, email and company, filters (the core's and
plugins'), and keyset pages.

One service for every screen and concern that lists contacts (the admin's list, segments'
pickers), so that "contacts tagged vip, in segment X, named Jan…" means the same everywhere.
Pages are keyset pages on an indexed key (id, or the unique email) instead of OFFSET, so page
20,000 costs what page 1 does; no exact total is counted, since counting a million filtered rows
is what would make a list slow.

Plugins add filters with `register_contact_list_filters` (`ContactFilter`): the segments concern
adds "Segment" this way. They add sorts with `register_contact_list_sorts` (`ContactSort`): a sort
the core cannot index (the scoring plugin's "highest score first") pages itself, behind an
opaque cursor of its own, over the same filtered statement.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Select, and_, column, false, func, literal_column, or_, select
from sqlalchemy import text as text_clause

from engine import plugins
from engine.contacts.models import LIFECYCLE_STAGES, Company, Contact, ContactTag, Tag
from engine.db import MAX_ROW_ID, db

PER_PAGE = 50
SORTS = ("newest", "oldest", "email")
STATUSES = ("active", "bounced", "merged", "erased", "all")
CORE_PARAMS = frozenset({"q", "stage", "tag", "company", "status", "sort", "after", "before"})


@dataclass(frozen=True)
class ContactFilter:
    """A filter a plugin adds to the contact list (`register_contact_list_filters`).

    `name` is its query-string parameter; `choices()` returns `[(value, label)]` for its menu;
    `apply(query, value)` returns the `select(Contact)` narrowed to `value` (only ever one of
    the choices' values)."""

    name: str
    label: str
    choices: Callable[[], list[tuple[str, str]]]
    apply: Callable[[Select[Any], str], Select[Any]]


@dataclass(frozen=True)
class ContactSort:
    """A sort a plugin adds to the contact list (`register_contact_list_sorts`).

    `name` is its value of the `sort` parameter, `label` its text in the menu. `page(statement,
    after, per_page)` returns one keyset page of `statement` (the `select(Contact)` already
    narrowed by every filter) after the cursor `after` ("" for the first page; otherwise a
    string this sort made, returned as is, or anything a person typed into the address), and
    the cursor of the next page (at most 320 characters), None on the last one."""

    name: str
    label: str
    page: Callable[[Select[Any], str, int], tuple[list[Contact], str | None]]


@dataclass(frozen=True)
class ContactQuery:
    """What a person asked the contact list for; `from_args` reads it from a query string."""

    q: str = ""
    stage: str = ""
    tag: str = ""
    company: str = ""
    status: str = "active"
    sort: str = "newest"
    extra: dict[str, str] = field(default_factory=dict)  # plugins' filters: {name: value}

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ContactQuery:
        """Every value bounded and checked: an unknown stage, status or sort is ignored."""
        sort = args.get("sort") or ""
        extra = {name: str(args.get(name) or "")[:200] for name in plugin_filters()
                 if args.get(name)}
        return cls(q=(args.get("q") or "").strip()[:320],
                   stage=args.get("stage") if args.get("stage") in LIFECYCLE_STAGES else "",
                   tag=(args.get("tag") or "").strip()[:100],
                   company=(args.get("company") or "").strip()[:200],
                   status=args.get("status") if args.get("status") in STATUSES else "active",
                   sort=sort if sort in SORTS or sort in plugin_sorts() else "newest",
                   extra=extra)

    def params(self) -> dict[str, str]:
        """The query string that asks for this again (defaults left out)."""
        chosen = dict(q=self.q, stage=self.stage, tag=self.tag, company=self.company,
                      status=self.status if self.status != "active" else "", sort=self.sort)
        return {k: v for k, v in {**chosen, **self.extra}.items() if v}


def plugin_filters() -> dict[str, tuple[str, ContactFilter]]:
    """`{name: (slug, filter)}` of the enabled plugins; of two with one name, the first wins,
    and a name the core's own parameters use is never taken."""
    found: dict[str, tuple[str, ContactFilter]] = {}
    for slug, item in plugins.current().collect("register_contact_list_filters"):
        if isinstance(item, ContactFilter) and item.name not in CORE_PARAMS:
            found.setdefault(item.name, (slug, item))
    return found


def plugin_sorts() -> dict[str, tuple[str, ContactSort]]:
    """`{name: (slug, sort)}` of the enabled plugins; of two with one name, the first wins, and
    the core's own sorts keep their names."""
    found: dict[str, tuple[str, ContactSort]] = {}
    for slug, item in plugins.current().collect("register_contact_list_sorts"):
        if isinstance(item, ContactSort) and item.name not in SORTS:
            found.setdefault(item.name, (slug, item))
    return found


def prefix(column: Any, start: str) -> Any:
    """`column` starts with `start` (both lower-case), in a form an index can serve."""
    if db.engine.dialect.name == "postgresql":
        escaped = start.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(f"{escaped}%", escape="\\")  # text_pattern_ops index
    return and_(column >= start, column < start + "\U0010ffff")  # SQLite compares bytes


MIN_ANYWHERE = 3  # a trigram: shorter pieces are matched at the start of each word instead


def name_or_email_search(low: str) -> Any:
    """Prefix search: an email, a first or last name, or "first last" (a prefix of each).

    Emails are stored lower-case and ranged on their unique index; names through the
    lower(name) indexes of the contacts-at-scale migration (abd2df493efc). It answers queries
    too short for a trigram (`search`)."""
    first, last = func.lower(Contact.first_name), func.lower(Contact.last_name)
    email = and_(Contact.email >= low, Contact.email < low + "\U0010ffff")
    if "@" in low or "." in low:
        return email
    words = low.split()
    if len(words) > 1:
        return and_(prefix(first, words[0]), prefix(last, " ".join(words[1:])))
    return or_(email, prefix(first, low), prefix(last, low))


def search(text: str) -> Any:
    """Contacts whose name, email or company contains `text` anywhere, in any case.

    Served by the search migration's structures (e4b7c2a9f813): trigram GIN indexes on
    PostgreSQL, the FTS5 trigram table `contacts_search` on SQLite. A trigram needs three
    characters, so a shorter query matches the start of an email, a name or a company name
    (indexed ranges), which is what one or two typed letters usually mean."""
    low = " ".join(text.lower().split())
    if len(low) < MIN_ANYWHERE:
        return _or_company(name_or_email_search(low), prefix(func.lower(Company.name), low))
    if db.engine.dialect.name == "sqlite" and search_ready():
        phrase = '"' + low.replace('"', '""') + '"'
        return Contact.id.in_(text_clause(
            "SELECT rowid FROM contacts_search WHERE contacts_search MATCH :phrase"
        ).bindparams(phrase=phrase).columns(column("rowid", Integer)))
    pattern = "%" + low.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return _or_company(SEARCH_TEXT.like(pattern, escape="\\"),
                       func.lower(Company.name).like(pattern, escape="\\"))


def _or_company(found: Any, company_matches: Any) -> Any:
    """`found`, or a contact of a company whose name matches. The companies are looked up
    first: a short list of ids lets PostgreSQL combine the indexes (a BitmapOr with the
    company_id index) where a subquery would make it walk every contact. A piece common to more
    companies matches so many contacts that walking the newest finds a page at once, so the
    subquery does as well there."""
    named = select(Company.id).where(company_matches)
    companies = list(db.session.scalars(named.limit(MAX_COMPANIES + 1)))
    if not companies:
        return found
    return or_(found, Contact.company_id.in_(
        companies if len(companies) <= MAX_COMPANIES else named))


# The expression PostgreSQL's trigram index is built on, spelled as the index spells it (a
# literal separator, not a bound parameter, or the planner would not match the two).
SEARCH_TEXT = func.lower(Contact.first_name.op("||")(literal_column("' '"))
                         .op("||")(Contact.last_name).op("||")(literal_column("' '"))
                         .op("||")(Contact.email))
MAX_COMPANIES = 1000


def search_ready() -> bool:
    """Whether this SQLite database has the search table (an SQLite older than 3.34 cannot
    make it; the search then scans, slower but with the same answers). One look at the
    schema, cheaper than remembering it per database."""
    return db.session.scalar(text_clause(
        "SELECT count(*) FROM sqlite_master WHERE name = 'contacts_search'")) == 1


def filtered(query: ContactQuery) -> Select[Any]:
    """`select(Contact)` narrowed to what `query` asks for, plugins' filters included."""
    statement = select(Contact)
    if query.status != "all":
        statement = statement.where(Contact.status == (query.status or "active"))
    if query.q:
        statement = statement.where(search(query.q))
    if query.stage in LIFECYCLE_STAGES:
        statement = statement.where(Contact.lifecycle_stage == query.stage)
    if query.tag:
        tag_id = db.session.scalar(select(Tag.id).where(Tag.name == query.tag))
        statement = statement.where(Contact.id.in_(select(ContactTag.contact_id).where(
            ContactTag.tag_id == (tag_id or -1))))
    if query.company:
        company_id = db.session.scalar(select(Company.id).where(Company.name == query.company))
        statement = statement.where(Contact.company_id == (company_id or -1))
    return _plugin_filtered(statement, query.extra)


def choices_of(slug: str, item: ContactFilter) -> list[tuple[str, str]] | None:
    """A plugin filter's `[(value, label)]` as text, or None when its code raised (reported to
    the owner under Admin → Plugins)."""
    try:
        return [(str(value), str(label)) for value, label in item.choices()]
    except Exception as exc:  # the engine's boundary for a plugin's code
        plugins.current().report_error(slug, "register_contact_list_filters", exc)
        return None


def _plugin_filtered(statement: Select[Any], chosen: dict[str, str]) -> Select[Any]:
    """Each chosen plugin filter, given only a value among its choices. One that raises
    matches nobody: a list silently left unfiltered would mislead."""
    for name, (slug, item) in plugin_filters().items():
        value = chosen.get(name)
        if not value:
            continue
        choices = choices_of(slug, item)
        if choices is None:
            statement = statement.where(false())
            continue
        if value not in {v for v, _ in choices}:
            continue
        try:
            statement = item.apply(statement, value)
        except Exception as exc:  # the engine's boundary for a plugin's code
            plugins.current().report_error(slug, "register_contact_list_filters", exc)
            statement = statement.where(false())
    return statement


def _row_id(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:  # "²" is a digit to str.isdigit, not to int()
        return None
    return number if 0 < number <= MAX_ROW_ID else None


def page(statement: Select[Any], sort: str, after: str = "",
         per_page: int = PER_PAGE) -> tuple[list[Contact], str | None]:
    """One page after the cursor `after` (the last row's sort key), and the next cursor."""
    rows, cursor, _ = sorted_page(statement, sort, after, per_page)
    return rows, cursor


def sorted_page(statement: Select[Any], sort: str, after: str = "",
                per_page: int = PER_PAGE) -> tuple[list[Contact], str | None, str]:
    """`page()`, and the sort that made it: "newest" when a plugin's sort is gone (disabled)
    or raised (reported to the owner), so the list still shows and its links page on."""
    if sort not in SORTS:
        found = _plugin_page(statement, sort, after, per_page)
        if found is not None:
            return *found, sort
        sort, after = "newest", ""
    if sort == "email":
        if after:
            statement = statement.where(Contact.email > after)
        statement = statement.order_by(Contact.email)
    elif sort == "oldest":
        if (cursor := _row_id(after)) is not None:
            statement = statement.where(Contact.id > cursor)
        statement = statement.order_by(Contact.id)
    else:
        if (cursor := _row_id(after)) is not None:
            statement = statement.where(Contact.id < cursor)
        statement = statement.order_by(Contact.id.desc())
    rows = list(db.session.scalars(statement.limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    next_cursor = None
    if more:
        next_cursor = rows[-1].email if sort == "email" else str(rows[-1].id)
    return rows, next_cursor, sort


def _plugin_page(statement: Select[Any], sort: str, after: str,
                 per_page: int) -> tuple[list[Contact], str | None] | None:
    """A plugin sort's page, or None when there is no such sort or its code raised. It runs
    in a savepoint: a failed statement (PostgreSQL then refuses every other one until the
    transaction ends) is undone, and the fallback page can still be read."""
    found = plugin_sorts().get(sort)
    if found is None:
        return None
    slug, item = found
    try:
        with db.session.begin_nested():
            rows, cursor = item.page(statement, after, per_page)
            rows = list(rows)[:per_page]
        if not all(isinstance(row, Contact) for row in rows):
            raise TypeError(f"the sort {sort!r} returned something other than contacts")
    except Exception as exc:  # the engine's boundary for a plugin's code
        plugins.current().report_error(slug, "register_contact_list_sorts", exc)
        return None
    return rows, (str(cursor) if cursor else None)
