"""Email templates: checked when saved, compiled once, personalised per recipient in microseconds.

An editor writes a subject, a preheader and a body (Markdown or HTML) with personalisation such
as `{{ contact.first_name | default("there") }}`. Three steps, each done where it is cheapest:

- `validate()` runs when the template is saved. A syntax error, an unknown name or field, unsafe
  HTML or an expression that fails on sample values is refused then, with the line and reason,
  so nothing can fail at send time for a reason that was knowable before.
- `compile_email()` does the expensive work once per template (and per batch, through the
  `compiled()` cache): Markdown to HTML, sanitising (nh3), the layout (`layout/`), CSS inlined
  (css-inline), then a sandboxed Jinja template for the HTML, one for the plain-text part and
  one for the subject. The Jinja tags are swapped for inert placeholders before Markdown,
  sanitising and inlining (so a `{{ site.url }}` in a link's address or `"there"` in an
  attribute survives them untouched) and put back at the end.
- `CompiledEmail.render(values)` only fills the three templates with plain values.

The sandbox (`ImmutableSandboxedEnvironment`, no globals) sees only the values given: dicts of
strings and numbers made by `contact_values()` and `site_values()`, never a model or the app.
"""
from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import css_inline
import markdown
import nh3
from flask import current_app
from jinja2 import (
    ChainableUndefined,
    Environment,
    FileSystemLoader,
    Template,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from engine.contacts.models import Contact
from engine.contacts.service import custom_fields
from engine.mail.models import EmailTemplate
from engine.mail.service import html_to_text

FORMATS = ("markdown", "html")
FIELDS = ("subject", "preheader", "body")
NAMES = frozenset({"contact", "company", "site", "unsubscribe_url", "preferences_url"})
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "job_title", "country",
                  "lifecycle_stage", "name")
COMPANY_FIELDS = frozenset({"name"})
SITE_FIELDS = frozenset({"name", "url", "address"})
MAX_BODY = 200_000  # characters: a long newsletter is ~20,000
MAX_LINE = 400  # the subject column's size
CACHE_SIZE = 64  # compiled templates kept per app (a few hundred KB at most)
LAYOUT = Path(__file__).parent / "layout"

# What an email body may contain: text formatting, links, images, tables and inline style
# (how emails are styled); never scripts, frames, forms or style sheets.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"style", "class", "id", "title", "lang", "dir", "align", "valign", "width", "height",
          "bgcolor"},
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "border"},
    "table": {"border", "cellpadding", "cellspacing", "role", "summary"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start", "type"},
    "font": {"color", "face", "size"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}
MARKDOWN_EXTENSIONS = ["tables", "fenced_code", "attr_list", "sane_lists", "def_list"]

# Refused on save rather than silently removed, so the editor knows the email will not hold it.
_UNSAFE = (
    (re.compile(r"<\s*(script|iframe|frame|frameset|object|embed|applet|form|input|button|"
                r"textarea|select|meta|link|base|style|svg|math|video|audio)\b", re.I),
     lambda m: f"<{m.group(1).lower()}> is not allowed in an email"
               + (": use style attributes instead" if m.group(1).lower() == "style" else "")),
    (re.compile(r"<[^>]*\s(on[a-z]+)\s*=", re.I),
     lambda m: f"event handler attributes ({m.group(1).lower()}=) are not allowed in an email"),
    (re.compile(r"(?:\b(?:href|src|background)\s*=\s*[\"']?|\]\(\s*<?)\s*"
                r"(javascript|vbscript|data)\s*:", re.I),
     lambda m: f"“{m.group(1).lower()}:” links are not allowed in an email"),
)
_JINJA = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}",
                    re.S)
_BLANK_LINES = re.compile(r"\n{3,}")
_BRACE = re.compile(r"\{(?=[{%#])")  # what would open a Jinja tag in text that must stay text


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template cannot be saved: which field, which line of it, and the reason."""

    field: str  # subject, preheader or body
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class TemplateRenderError(ValueError):
    """An expression failed for one recipient's values (validation makes this rare: it tries
    every template on sample and on empty values before it is saved)."""


@dataclass(frozen=True)
class CompiledEmail:
    """A template ready to personalise: three sandboxed Jinja templates, compiled once."""

    subject_template: Template
    html_template: Template
    text_template: Template

    def render(self, values: dict[str, Any]) -> RenderedEmail:
        """The email for one recipient; `values` as made by `contact_values()` and
        `site_values()`, plus `unsubscribe_url` and `preferences_url` (and a mailing's
        extra names). The subject is one line whatever the values hold."""
        try:
            subject = _fill(self.subject_template, values)
            html = _fill(self.html_template, values)
            text = _fill(self.text_template, values)
        except Exception as exc:
            raise TemplateRenderError(_reason(exc)) from exc
        # A condition on lines of its own leaves blank lines in the text: two at most.
        return RenderedEmail(" ".join(subject.split()), html, _BLANK_LINES.sub("\n\n", text))


def _fill(template: Template, values: dict[str, Any]) -> str:
    """`template.render(values)` without copying the values into a new dict (no globals are
    defined, so nothing needs merging)."""
    return "".join(template.root_render_func(template.new_context(values, shared=True)))


# -- the sandbox ---------------------------------------------------------------------------------

def _default(value: Any, default_value: Any = "", boolean: bool = True) -> Any:
    """Jinja's `default`, but an empty value counts as missing too: `{{ contact.first_name |
    default("there") }}` says "there" to a contact whose first name is blank, which is what an
    editor means by it."""
    if isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


# str methods that pad text to any width given: "{:>50000000}".format(x) is 50 MB.
_WIDENING = frozenset({"format", "format_map", "center", "ljust", "rjust", "zfill",
                       "expandtabs"})


class _Sandbox(ImmutableSandboxedEnvironment):
    """No globals, no mutation of the values, no attribute starting with "_", and nothing that
    builds a huge string or number (a template must not exhaust a worker's memory): `*` and
    `**` are bounded, `%` formatting of text and the padding methods and filters are gone, and
    loops are refused when a template is saved (see `_check_source`)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _WIDENING:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        """No `str.format` at all (Jinja's sandbox would hand out a checked one, widths and
        all), so `is_safe_attribute` decides."""
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`contact.first_name` on the plain dicts given: a key look-up first (the sandbox's
        own path tries the attribute, fails, then the key: twice the cost per expression)."""
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("formatting text with % is not available; write the values "
                                "with {{ }} instead")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("the power is too large")
        if operator == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > 100_000:
                raise SecurityError("the repeated text is too long")
        return super().call_binop(context, operator, left, right)


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=ChainableUndefined,
                   finalize=lambda value: "" if value is None else value)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), joiner(), namespace()
    env.filters["default"] = env.filters["d"] = _default
    for name in ("center", "format", "indent", "wordwrap"):  # widths without a bound
        env.filters.pop(name, None)
    return env


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)
_LAYOUT_ENV = Environment(  # the trusted layout files; `{{ }}` is left for the recipient
    loader=FileSystemLoader(LAYOUT), autoescape=True, trim_blocks=False,
    variable_start_string="[[", variable_end_string="]]", block_start_string="[%",
    block_end_string="%]", comment_start_string="[#", comment_end_string="#]")
_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


# -- validation ----------------------------------------------------------------------------------

def validate(*, subject: str, preheader: str, body: str, format: str,
             extra_names: Iterable[str] = ()) -> list[TemplateProblem]:
    """Everything wrong with a template, each with its field and line; [] when it can be saved.

    Checked: Jinja syntax; names other than `contact`, `company`, `site`, `unsubscribe_url`,
    `preferences_url` and `extra_names`; `contact.<field>` for fields that do not exist (the
    contact's columns and the custom fields defined); attributes starting with "_"; includes;
    unsafe HTML; and a trial render on a sample contact and on an empty one (an expression
    that fails there would fail at send time)."""
    problems: list[TemplateProblem] = []
    if format not in FORMATS:
        problems.append(TemplateProblem("body", 1, "the format must be Markdown or HTML"))
    allowed = NAMES | set(extra_names)
    contact_fields = set(CONTACT_FIELDS) | set(custom_fields())
    for field, source in (("subject", subject), ("preheader", preheader), ("body", body)):
        if field != "body" and ("\n" in source or "\r" in source):
            problems.append(TemplateProblem(field, 1, "must be one line"))
            continue
        limit = MAX_BODY if field == "body" else MAX_LINE
        if len(source) > limit:
            problems.append(TemplateProblem(field, 1, f"is longer than {limit:,} characters"))
            continue
        problems += _check_source(field, source, allowed, contact_fields)
        if field == "body":
            problems += _unsafe_html(source)
    if not subject.strip() and not any(p.field == "subject" for p in problems):
        problems.append(TemplateProblem("subject", 1, "an email needs a subject"))
    if problems:
        return problems
    return _trial(subject, preheader, body, format, extra_names)


def _check_source(field: str, source: str, allowed: set[str],
                  contact_fields: set[str]) -> list[TemplateProblem]:
    try:
        tree = _HTML_ENV.parse(source)
        _HTML_ENV.compile(source)  # unknown filters and tests are found here
    except TemplateSyntaxError as exc:
        return [TemplateProblem(field, exc.lineno or 1, exc.message or "syntax error")]
    problems = []
    for node in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        problems.append(TemplateProblem(field, node.lineno,
                                        "includes and imports are not available in emails"))
    for node in tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock)):
        # Nothing a template is given is a list worth looping over, and nested loops over a
        # long text are billions of steps for the worker that renders them.
        problems.append(TemplateProblem(field, node.lineno,
                                        "loops and macros are not available in emails"))
    unknown = meta.find_undeclared_variables(tree) - allowed
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in unknown:
            unknown.discard(node.name)
            problems.append(TemplateProblem(
                field, node.lineno, f"unknown name “{node.name}” (use "
                f"{', '.join(sorted(allowed))})"))
    known = {"contact": contact_fields, "company": COMPANY_FIELDS, "site": SITE_FIELDS}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else None)
        if not isinstance(attr, str):
            continue
        if attr.startswith("_"):
            problems.append(TemplateProblem(field, node.lineno,
                                            f"“{attr}” is not available (names starting "
                                            "with _ are private)"))
        elif isinstance(node.node, nodes.Name) and node.node.name in known \
                and attr not in known[node.node.name]:
            owner = node.node.name
            problems.append(TemplateProblem(
                field, node.lineno, f"{owner} has no field “{attr}” (its fields: "
                f"{', '.join(sorted(known[owner]))})"))
    return sorted(problems, key=lambda p: p.line)


def _unsafe_html(source: str) -> list[TemplateProblem]:
    problems = []
    for number, line in enumerate(source.splitlines() or [""], start=1):
        for pattern, reason in _UNSAFE:
            if match := pattern.search(line):
                problems.append(TemplateProblem("body", number, reason(match)))
                break
    return problems


def _trial(subject: str, preheader: str, body: str, format: str,
           extra_names: Iterable[str]) -> list[TemplateProblem]:
    """Render on a sample contact and on a blank one: what fails now would fail at send time.
    Each field is tried on its own first, so a failure has its line in what the editor wrote."""
    try:
        email = compile_email(subject=subject, preheader=preheader, body=body, format=format,
                              marketing=True)
    except TemplateSyntaxError as exc:  # a tag the HTML moved, e.g. a loop between table rows
        return [TemplateProblem("body", 1, "a template tag ends up out of place in the email's "
                                f"HTML ({exc.message}); keep tags inside text or a table cell")]
    extra = {name: "" for name in extra_names}
    fields = (("subject", subject, _TEXT_ENV), ("preheader", preheader, _HTML_ENV),
              ("body", body, _HTML_ENV))
    for values in (sample_values(), blank_values()):
        values |= {"unsubscribe_url": "#", "preferences_url": "#", **extra}
        for field, source, env in fields:
            try:
                _fill(env.from_string(source), values)
            except Exception as exc:
                return [TemplateProblem(field, _line_of(exc.__traceback__, source),
                                        _reason(exc))]
        try:
            email.render(values)
        except TemplateRenderError as exc:
            return [TemplateProblem("body", 1, str(exc))]
    return []


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    return f"{type(exc).__name__.replace('Error', ' error').strip()}: {exc}".rstrip(": ")


def _line_of(tb: TracebackType | None, source: str) -> int:
    """The template line an exception was raised on (Jinja rewrites its traceback so the
    template's frames carry template line numbers); 1 when it cannot tell."""
    line = 1
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return min(line, source.count("\n") + 1)


# -- compilation ---------------------------------------------------------------------------------

class _Held:
    """Jinja tags swapped for inert placeholders (letters and digits, which Markdown, nh3 and
    css-inline leave alone), and put back once the HTML is final."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(4)
        self.tags: list[str] = []
        self.statements: set[str] = set()
        self._token = re.compile(f"XJ{self.nonce}N(\\d+)JX")

    def hold(self, source: str) -> str:
        return _JINJA.sub(lambda m: self.token(m.group(0)), source)

    def token(self, tag: str) -> str:
        placeholder = f"XJ{self.nonce}N{len(self.tags)}JX"
        self.tags.append(tag)
        if not tag.startswith("{{"):
            self.statements.add(placeholder)
        return placeholder

    def literal_braces(self, html: str) -> str:
        """Text that would read as a Jinja tag (`{{` from an entity) kept as text."""
        return _BRACE.sub(lambda m: self.token("{{ '{' }}"), html)

    def restore(self, text: str) -> str:
        text = _BRACE.sub("{{ '{' }}", text)
        return self._token.sub(lambda m: self.tags[int(m.group(1))], text)

    def unwrap_statements(self, html: str) -> str:
        """Statement tags (`{% if … %}`) at the start or end of a paragraph move out of it, so
        a condition on lines of its own leaves no empty paragraph behind when it is false."""
        token = f"XJ{self.nonce}N\\d+JX"
        lead = re.compile(f"^(?:\\s*{token})+\\s*")
        trail = re.compile(f"\\s*(?:{token}\\s*)+$")

        def statements_only(part: str) -> bool:
            return all(word in self.statements for word in part.split())

        def hoist(match: re.Match[str]) -> str:
            opening, inner = match.group(1), match.group(2)
            before = after = ""
            if (found := lead.match(inner)) and statements_only(found.group(0)):
                before, inner = found.group(0), inner[found.end():]
            if (found := trail.search(inner)) and statements_only(found.group(0)):
                after, inner = found.group(0), inner[:found.start()]
            return before + (f"{opening}{inner}</p>" if inner.strip() else "") + after
        return re.sub(r"(<p(?:\s[^>]*)?>)(.*?)</p>", hoist, html, flags=re.S)


def _body_html(body: str, format: str, held: _Held) -> str:
    source = held.hold(body)
    if format == "markdown":
        source = markdown.markdown(source, extensions=MARKDOWN_EXTENSIONS,
                                   output_format="html")
    source = held.unwrap_statements(source)
    clean = nh3.clean(source, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                      url_schemes=URL_SCHEMES, link_rel=None)
    return held.literal_braces(clean)


def compile_email(*, subject: str, preheader: str, body: str, format: str,
                  marketing: bool) -> CompiledEmail:
    """Compile a template (see the module's docstring); the result renders any recipient."""
    held = _Held()
    body_html = _body_html(body, format, held)
    page = _LAYOUT_ENV.get_template("email.html").render(
        subject=held.hold(subject), preheader=held.hold(preheader), body=Markup(body_html),
        marketing=marketing)
    footer = _LAYOUT_ENV.get_template("footer.html").render(marketing=marketing)
    html = held.restore(_INLINER.inline(held.hold(page)))
    text = held.restore(html_to_text(held.hold(f"{body_html}\n<hr>\n{footer}")))
    return CompiledEmail(subject_template=_TEXT_ENV.from_string(subject),
                         html_template=_HTML_ENV.from_string(html),
                         text_template=_TEXT_ENV.from_string(text))


class _Cache:
    """Compiled templates by (id, updated_at, subject, marketing), least recently used out."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[Any, ...], CompiledEmail] = OrderedDict()
        self.lock = threading.Lock()


def compiled(template: EmailTemplate, *, subject: str | None = None,
             marketing: bool | None = None, preheader: str | None = None) -> CompiledEmail:
    """`template` compiled, from this app's cache when it has not changed since: a batch of
    hundreds of recipients compiles it once. `subject` and `preheader` replace the template's
    (a mailing's own); `marketing` defaults to the template's kind."""
    marketing = template.kind == "marketing" if marketing is None else marketing
    subject = template.subject if subject is None else subject
    preheader = (template.preheader or "") if preheader is None else preheader
    key = (template.id, template.updated_at, subject, marketing, preheader)
    cache = current_app.extensions.setdefault("magnet.mail.compiled", _Cache())
    with cache.lock:
        found = cache.entries.get(key)
        if found is not None:
            cache.entries.move_to_end(key)
            return found
    email = compile_email(subject=subject, preheader=preheader,
                          body=template.body or "", format=template.format,
                          marketing=marketing)
    with cache.lock:
        cache.entries[key] = email
        while len(cache.entries) > CACHE_SIZE:
            cache.entries.popitem(last=False)
    return email


def render_line(source: str, values: dict[str, Any]) -> str:
    """One line (a preheader, say) rendered on its own, as text, for a preview to show."""
    try:
        return " ".join(_fill(_TEXT_ENV.from_string(source), values).split())
    except Exception as exc:
        raise TemplateRenderError(_reason(exc)) from exc


# -- values --------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def contact_values(contact: Contact | Any) -> dict[str, Any]:
    """What a template may know of a contact: their fields and custom fields (every defined
    key present, "" when unset) and their company's name, as plain values. `contact` is a
    `Contact` or anything with its fields (the bulk sender's `sending.Recipient`)."""
    values: dict[str, Any] = {name: getattr(contact, name) or "" for name in CONTACT_FIELDS}
    custom = contact.custom or {}
    for key in custom_fields():
        values[key] = _plain(custom.get(key, ""))
    company = contact.company
    return {"contact": values, "company": {"name": company.name if company else ""}}


def site_values() -> dict[str, Any]:
    """The site's name, public address (`SITE_URL`, "" when unset: never the request's Host)
    and postal address (`address` in the site settings, for marketing footers)."""
    from engine.content.service import site_name, site_settings
    settings = site_settings()
    address = settings.get("address") or settings.get("postal_address") or ""
    url = (current_app.config.get("SITE_URL") or "").strip().rstrip("/")
    return {"site": {"name": site_name(), "url": url, "address": " ".join(str(address).split())}}


def _sample_custom(field: Any) -> Any:
    if field.type == "number":
        return 42
    if field.type == "date":
        return "2025-01-31"
    if field.type == "choice" and field.choices:
        return field.choices[0]
    return f"Example {field.label.lower()}"


def sample_values() -> dict[str, Any]:
    """A made-up contact with every field filled, for previews and trial renders."""
    contact = {"first_name": "Alex", "last_name": "Example", "email": "alex@example.com",
               "phone": "+44 20 7946 0000", "job_title": "Marketing lead", "country": "GB",
               "lifecycle_stage": "lead", "name": "Alex Example"}
    contact |= {key: _sample_custom(f) for key, f in custom_fields().items()}
    return {"contact": contact, "company": {"name": "Example Ltd"},
            "site": {"name": "Example site", "url": "https://www.example.com",
                     "address": "1 Example Street, Example Town"}}


def blank_values() -> dict[str, Any]:
    """A contact with nothing known but an address (most imported contacts)."""
    contact = dict.fromkeys(CONTACT_FIELDS, "") | dict.fromkeys(custom_fields(), "")
    contact["email"] = "someone@example.com"
    return {"contact": contact, "company": {"name": ""}, "site": {"name": "", "url": "",
                                                                  "address": ""}}
