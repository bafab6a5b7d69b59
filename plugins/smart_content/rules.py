"""Rules: which variant of a block a visitor sees, decided from a `Context` alone.

A variant's rules are `{"match": "all"|"any", "conditions": [{"kind", "op", "value"}]}`; the
first variant whose rules hold is shown, else the block's default. Evaluation is pure (no
request, no database, no Redis): everything it reads was gathered once per request into the
`Context` (`context.py`), so it costs microseconds and is trivially testable.

Kinds for anyone come from the request and the plugin's own cookie; kinds for known contacts
read the Redis profile (`profiles.py`) and never hold for an anonymous or untrusted browser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    known: bool = False  # needs a known (trusted) contact's profile
    number: bool = False  # compared with at_least / at_most
    hint: str = ""  # what the value looks like, for the rule builder


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("utm_source", "UTM source (this visit)", hint="linkedin"),
    Kind("utm_medium", "UTM medium (this visit)", hint="cpc"),
    Kind("utm_campaign", "UTM campaign (this visit)", hint="spring-launch"),
    Kind("first_utm_source", "UTM source (first visit)"),
    Kind("first_utm_medium", "UTM medium (first visit)"),
    Kind("first_utm_campaign", "UTM campaign (first visit)"),
    Kind("referrer_type", "Referrer type", hint="search, social, email, other, none"),
    Kind("referrer_domain", "Referrer domain", hint="news.ycombinator.com"),
    Kind("language", "Preferred language", hint="de"),
    Kind("country", "Country (from the IP)", hint="DE"),
    Kind("device", "Device", hint="desktop, mobile, tablet"),
    Kind("query", "Query parameter", hint="plan=pro"),
    Kind("visitor", "New or returning", hint="new, returning"),
    Kind("pages_seen", "Pages seen before", number=True, hint="3"),
    Kind("list", "On the list", known=True, hint="newsletter"),
    Kind("segment", "In the segment", known=True, hint="segment id"),
    Kind("stage", "Lifecycle stage", known=True, hint="sales_qualified"),
    Kind("score", "Score", known=True, number=True, hint="50"),
    Kind("company", "Company", known=True, hint="Acme"),
    Kind("field", "Custom field", known=True, hint="industry=retail"),
    Kind("customer", "Customer", known=True, hint="yes, no"),
)}
OPS = {"is": "is", "is_not": "is not", "contains": "contains", "at_least": "is at least",
       "at_most": "is at most"}


@dataclass
class Context:
    """What rules may read about this request. `profile` is None for anyone not known."""

    utm: dict[str, str] = field(default_factory=dict)  # this visit's
    first_utm: dict[str, str] = field(default_factory=dict)
    referrer_type: str = "none"
    referrer_domain: str = ""
    languages: tuple[str, ...] = ()  # primary subtags, most preferred first
    country: str = ""
    device: str = "desktop"
    query: dict[str, str] = field(default_factory=dict)
    returning: bool = False
    pages_seen: int = 0  # before this one
    profile: dict[str, Any] | None = None


def _values(kind: str, ctx: Context, arg: str) -> list[Any]:
    """The context's values for a kind: a condition holds when one of them matches."""
    p = ctx.profile or {}
    simple: dict[str, Any] = {
        "utm_source": ctx.utm.get("source"), "utm_medium": ctx.utm.get("medium"),
        "utm_campaign": ctx.utm.get("campaign"),
        "first_utm_source": ctx.first_utm.get("source"),
        "first_utm_medium": ctx.first_utm.get("medium"),
        "first_utm_campaign": ctx.first_utm.get("campaign"),
        "referrer_type": ctx.referrer_type, "referrer_domain": ctx.referrer_domain,
        "country": ctx.country, "device": ctx.device,
        "visitor": "returning" if ctx.returning else "new", "pages_seen": ctx.pages_seen,
    }
    if kind in simple:
        return [simple[kind]]
    if kind == "language":
        return list(ctx.languages)
    if kind == "query":
        return [ctx.query.get(arg)]
    if ctx.profile is None:
        return []
    if kind == "list":
        return list(p.get("lists", ()))
    if kind == "segment":
        return [str(s) for s in p.get("segments", ())]
    if kind == "stage":
        return [p.get("stage")]
    if kind == "customer":
        return ["yes" if p.get("stage") == "customer" else "no"]
    if kind == "score":
        return [p.get("score")]
    if kind == "company":
        return [p.get("company")]
    if kind == "field":
        return [(p.get("fields") or {}).get(arg)]
    return []


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(op: str, have: Any, want: str) -> bool:
    if have is None or have == "":
        return False
    if op in ("at_least", "at_most"):
        a, b = _number(have), _number(want)
        if a is None or b is None:
            return False
        return a >= b if op == "at_least" else a <= b
    have_s, want_s = str(have).strip().lower(), want.strip().lower()
    if op == "contains":
        return want_s in have_s
    return have_s == want_s


def holds(condition: dict[str, Any], ctx: Context) -> bool:
    """One condition. `is_not` holds when no value is the one named (also when there is none,
    e.g. a visit without UTM is "not linkedin"); a known-contact kind never holds for someone
    unknown, whatever the operator, so "stage is not customer" does not match strangers."""
    kind, op = str(condition.get("kind", "")), str(condition.get("op", "is"))
    value = str(condition.get("value", ""))
    if kind not in KINDS or op not in OPS:
        return False
    arg = ""
    if kind in ("query", "field"):
        arg, _, value = value.partition("=")
        arg = arg.strip()
    if KINDS[kind].known and ctx.profile is None:
        return False
    values = _values(kind, ctx, arg)
    if op == "is_not":
        return not any(_compare("is", v, value) for v in values)
    return any(_compare(op, v, value) for v in values)


def matches(rules: dict[str, Any] | None, ctx: Context) -> bool:
    """A variant's rules; a variant with no conditions never matches (it would hide every
    later variant and the default, which is what the default is for)."""
    conditions = (rules or {}).get("conditions") or []
    if not conditions:
        return False
    results = (holds(c, ctx) for c in conditions)
    return any(results) if (rules or {}).get("match") == "any" else all(results)


def choose(variants: list[dict[str, Any]], ctx: Context) -> int:
    """The index of the first matching variant, or -1 for the default."""
    for index, variant in enumerate(variants):
        if matches(variant.get("rules"), ctx):
            return index
    return -1


def needs_profile(variants: list[dict[str, Any]]) -> bool:
    """Whether any rule reads a known contact's profile (else no Redis trip is made)."""
    return any(KINDS.get(str(c.get("kind")), KINDS["utm_source"]).known
               for v in variants for c in (v.get("rules") or {}).get("conditions") or [])
