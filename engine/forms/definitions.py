"""Form definitions: what `content/forms/*.yaml` and the admin describe, checked once on load.

A definition is plain data (stored as JSON on the `forms` row); `parse()` turns it into frozen
dataclasses and refuses anything the renderer or the pipeline could not honour safely, such as a
redirect to another site or a field name that would clash with the form's own hidden fields.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FIELD_TYPES = ("email", "text", "textarea", "select", "radio", "checkboxes", "number", "phone",
               "country", "consent", "hidden")
SUCCESS_ACTIONS = ("message", "redirect", "asset")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
RESERVED_NAMES = {"csrf_token", "submit"}
# Contact attributes a field sets when named like them; any other name is a custom field.
CONTACT_ATTRIBUTES = {"email", "first_name", "last_name", "phone", "job_title", "country",
                      "company", "lifecycle_stage"}
AUTOCOMPLETE = {"email": "email", "first_name": "given-name", "last_name": "family-name",
                "phone": "tel", "company": "organization", "job_title": "organization-title",
                "country": "country"}
DEFAULT_MAX_LENGTH = {"textarea": 5000, "email": 320}


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str
    required: bool = False
    help: str = ""
    placeholder: str = ""
    choices: tuple[Choice, ...] = ()
    default: str = ""
    profiling: bool = False  # asked progressively, a few per visit, only while unknown
    min: float | None = None
    max: float | None = None
    max_length: int = 500
    autocomplete: str = ""

    @property
    def maps_to(self) -> str:
        """The contact attribute or custom field this answer is stored in ('' for none)."""
        if self.type == "consent":
            return "consent"
        return self.name

    @property
    def single_line(self) -> bool:
        return self.type != "textarea"


@dataclass(frozen=True)
class SuccessDef:
    action: str = "message"
    message: str = "Thank you!"
    redirect: str = ""
    asset: str = ""


@dataclass(frozen=True)
class FormDef:
    slug: str
    title: str
    fields: tuple[FieldDef, ...]
    description: str = ""
    submit_label: str = "Submit"
    success: SuccessDef = field(default_factory=SuccessDef)
    notify: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    double_opt_in: bool = False
    max_profiling_fields: int = 2

    def field(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def asks_email(self) -> bool:
        return self.field("email") is not None


def _choices(raw: Any, where: str) -> tuple[Choice, ...]:
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: choices must be a non-empty list")
    out = []
    for item in raw:
        if isinstance(item, dict):
            out.append(Choice(str(item["value"]), str(item.get("label", item["value"]))))
        else:
            out.append(Choice(str(item), str(item)))
    if len({c.value for c in out}) != len(out):
        raise DefinitionError(f"{where}: two choices have the same value")
    return tuple(out)


def _bound(raw: Any, where: str) -> float | None:
    """A number field's min or max: an ordinary number (NaN, infinity or text would fail only
    when the form is shown or submitted)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not -1e15 < raw < 1e15:
        raise DefinitionError(f"{where}: min and max are numbers, like 0 or 99.5")
    return raw


def _safe_path(path: str) -> bool:
    """A same-site path: starts with one slash, no scheme, no backslash, no control chars."""
    return (path.startswith("/") and not path.startswith("//") and "\\" not in path
            and not any(ord(c) < 32 for c in path))


def parse_field(raw: dict[str, Any], slug: str) -> FieldDef:
    name = str(raw.get("name", ""))
    where = f"form {slug!r}, field {name!r}"
    if not NAME.match(name) or name in RESERVED_NAMES or name.startswith("_"):
        raise DefinitionError(f"{where}: names are lower-case letters, digits and _")
    ftype = raw.get("type", "text")
    if ftype not in FIELD_TYPES:
        raise DefinitionError(f"{where}: type must be one of {', '.join(FIELD_TYPES)}")
    if ftype == "email" and name != "email":
        raise DefinitionError(f"{where}: the email field must be named 'email'")
    choices: tuple[Choice, ...] = ()
    if ftype in ("select", "radio", "checkboxes"):
        choices = _choices(raw.get("choices"), where)
    low, high = _bound(raw.get("min"), where), _bound(raw.get("max"), where)
    if low is not None and high is not None and low > high:
        raise DefinitionError(f"{where}: min is more than max")
    return FieldDef(
        name=name, type=ftype, label=str(raw.get("label") or name.replace("_", " ").capitalize()),
        required=bool(raw.get("required", False)), help=str(raw.get("help", "")),
        placeholder=str(raw.get("placeholder", "")), choices=choices,
        default=str(raw.get("default", "")), profiling=bool(raw.get("profiling", False)),
        min=low, max=high,
        max_length=int(raw.get("max_length", DEFAULT_MAX_LENGTH.get(ftype, 500))),
        autocomplete=str(raw.get("autocomplete")
                         or AUTOCOMPLETE.get(name, "off" if ftype == "hidden" else "")),
    )


def parse(raw: dict[str, Any]) -> FormDef:
    """A checked definition from plain data; DefinitionError says what is wrong and where."""
    if not isinstance(raw, dict):
        raise DefinitionError("a form definition is a mapping")
    slug = str(raw.get("slug", ""))
    if not SLUG.match(slug):
        raise DefinitionError(f"form slug {slug!r}: lower-case letters, digits and dashes")
    fields = tuple(parse_field(f, slug) for f in raw.get("fields") or [])
    if not fields:
        raise DefinitionError(f"form {slug!r} has no fields")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise DefinitionError(f"form {slug!r}: two fields have the same name")
    success_raw = raw.get("success") or {}
    success = SuccessDef(action=success_raw.get("action", "message"),
                         message=str(success_raw.get("message", "Thank you!")),
                         redirect=str(success_raw.get("redirect", "")),
                         asset=str(success_raw.get("asset", "")))
    if success.action not in SUCCESS_ACTIONS:
        raise DefinitionError(f"form {slug!r}: success action must be one of {SUCCESS_ACTIONS}")
    if success.action == "redirect" and not _safe_path(success.redirect):
        raise DefinitionError(f"form {slug!r}: redirect must be a path on this site, like /thanks")
    if success.action == "asset" and (not success.asset or "/" in success.asset
                                      or success.asset.startswith(".")):
        raise DefinitionError(f"form {slug!r}: asset must be a file name in content/assets/")
    lists = tuple(str(x) for x in raw.get("lists") or [])
    if (lists or raw.get("double_opt_in")) and "email" not in names:
        raise DefinitionError(f"form {slug!r}: subscribing forms need an email field")
    notify = tuple(str(x) for x in raw.get("notify") or [])
    if any(("\n" in n or "\r" in n or "@" not in n) for n in notify):
        raise DefinitionError(f"form {slug!r}: notify must list email addresses")
    profiling = raw.get("profiling") or {}
    return FormDef(
        slug=slug, title=str(raw.get("title") or slug), fields=fields,
        description=str(raw.get("description", "")),
        submit_label=str(raw.get("submit_label", "Submit")), success=success, notify=notify,
        lists=lists, tags=tuple(str(x) for x in raw.get("tags") or []),
        double_opt_in=bool(raw.get("double_opt_in", False)),
        max_profiling_fields=int(profiling.get("max_fields", 2)),
    )
