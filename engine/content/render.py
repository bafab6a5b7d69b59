"""Markdown to safe HTML, then shortcodes.

The order is what makes it safe: shortcodes are cut out first and replaced by random
placeholders; the Markdown is rendered and sanitised with nh3 (no script, no event handler,
no `javascript:` URL survives, whatever an editor typed); only then are the placeholders
replaced by the shortcodes' HTML, which is trusted because plugins are code. Trusted only
where HTML may stand, in text content: a placeholder that ended up inside a tag (an attribute
such as `title`, `alt` or a link's `href`) is found by parsing the sanitised HTML and gets the
shortcode's own text, escaped, so a shortcode's markup can never open or close an attribute.

Images from the media library (`/media/...`) become responsive pictures after sanitising
(`engine.media.html.responsive_images`: the `srcset` is the library's, never the editor's).
The sanitised HTML of an item is cached per revision; shortcodes run per render because their
output may depend on the request (the page cache then keeps the whole page).

Shortcodes: `[name]`, `[name word]`, `[name key=value key2="two words"]`. Positional words are
passed as `"0"`, `"1"`... (as WordPress does). A renderer is `render(args, context) -> str`
with `context` holding at least `request` and `item`. Inside code blocks and inline code
shortcodes are left as written; `[[name ...]]` prints a literal `[name ...]`.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import markdown
import nh3
from flask import current_app
from markupsafe import Markup, escape

from engine import plugins
from engine.media.html import responsive_images

Renderer = Callable[[dict[str, str], dict[str, Any]], str]

EXTENSIONS = ["tables", "fenced_code", "toc", "attr_list", "sane_lists", "smarty", "abbr",
              "def_list", "footnotes"]
EXTENSION_CONFIGS = {"toc": {"permalink": False, "toc_depth": "2-4"}}

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details",
    "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "section", "small",
    "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul", "aside",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href", "rel", "hreflang"},
    "img": {"src", "alt", "width", "height", "loading"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "scope", "style"},
    "ol": {"start", "reversed"},
    "abbr": {"title"},
    "details": {"open"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}

SHORTCODE = re.compile(r"(?<!\[)\[([a-z][a-z0-9_-]+)((?:\s+[^\[\]\n]*)?)\](?![\(\[:\]])")
ESCAPED = re.compile(r"\[(\[[a-z][a-z0-9_-]+(?:\s+[^\[\]\n]*)?\])\]")
CODE = re.compile(r"(^(?P<fence>```|~~~)[^\n]*\n.*?^(?P=fence)[ \t]*$|`[^`\n]+`)",
                  re.MULTILINE | re.DOTALL)

HTML_CACHE_SIZE = 500


class RenderedHTML:
    """`app.extensions["magnet.rendered_html"]`: sanitised HTML by revision, bounded (LRU)."""

    def __init__(self, size: int = HTML_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Any, tuple[str, list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[str, list[Any]] | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Any, value: tuple[str, list[Any]]) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def sanitise(html: str) -> str:
    """Keep formatting, drop anything that can run code."""
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes=URL_SCHEMES, link_rel=None,
                     filter_style_properties={"text-align"})


def markdown_to_html(text: str) -> str:
    """Markdown to sanitised HTML, no shortcodes (a fresh converter: they are not thread-safe)."""
    converter = markdown.Markdown(extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS,
                                  output_format="html")
    return sanitise(converter.convert(text))


def parse_args(raw: str) -> dict[str, str]:
    try:
        words = shlex.split(raw.replace("\u201c", '"').replace("\u201d", '"'))
    except ValueError:
        words = raw.split()
    args: dict[str, str] = {}
    position = 0
    for word in words:
        key, sep, value = word.partition("=")
        if sep and re.fullmatch(r"[a-zA-Z_][\w-]*", key):
            args[key] = value
        else:
            args[str(position)] = word
            position += 1
    return args


def _extract(text: str, nonce: str) -> tuple[str, list[tuple[str, dict[str, str], str]]]:
    """Replace shortcodes outside code by placeholders; returns the text and the calls."""
    calls: list[tuple[str, dict[str, str], str]] = []

    def replace(match: re.Match[str]) -> str:
        calls.append((match.group(1), parse_args(match.group(2)), match.group(0)))
        return f"mgsc{nonce}x{len(calls) - 1}x"

    def outside_code(chunk: str) -> str:
        chunk = SHORTCODE.sub(replace, chunk)
        return ESCAPED.sub(lambda m: m.group(1), chunk)

    pieces, last = [], 0
    for match in CODE.finditer(text):
        pieces.append(outside_code(text[last:match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(outside_code(text[last:]))
    return "".join(pieces), calls


def shortcodes() -> dict[str, Renderer]:
    """Every registered shortcode of the enabled plugins (the first registration wins)."""
    found: dict[str, Renderer] = {}
    for _slug, (name, renderer) in plugins.current().collect("register_shortcodes"):
        found.setdefault(name, renderer)
    return found


def _hint(name: str, source: str, reason: str) -> str:
    """What an editor sees instead of a broken shortcode (visitors see it too, clearly boxed)."""
    return (f'<span class="shortcode-hint" role="note">{escape(source)} '
            f'<small>({escape(reason)})</small></span>')


class _TagFinder(HTMLParser):
    """Where each start tag of some HTML begins and ends (as offsets into it)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.spans: list[tuple[int, int]] = []
        # getpos() counts lines by "\n" alone (not str.splitlines's other breaks)
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", html))]
        self.feed(html)
        self.close()

    def _here(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        start = self._here()
        self.spans.append((start, start + len(self.get_starttag_text() or "")))

    handle_startendtag = handle_starttag


def _literal_in_tags(html: str, calls: list[tuple[str, dict[str, str], str]],
                     nonce: str) -> str:
    """Placeholders inside tags (attribute values) become the shortcode's text, escaped: only
    text content may receive a shortcode's HTML."""
    placeholder = re.compile(rf"mgsc{nonce}x(\d+)x")
    if not placeholder.search(html) or "<" not in html:
        return html
    pieces, last = [], 0
    for start, end in _TagFinder(html).spans:
        tag = html[start:end]
        if placeholder.search(tag):
            pieces += [html[last:start], placeholder.sub(
                lambda m: str(escape(calls[int(m.group(1))][2])), tag)]
            last = end
    pieces.append(html[last:])
    return "".join(pieces)


def _expand(html: str, calls: list[tuple[str, dict[str, str], str]], nonce: str,
            context: dict[str, Any]) -> str:
    if not calls:
        return html
    html = _literal_in_tags(html, calls, nonce)
    registry = shortcodes()
    outputs: dict[int, str] = {}

    def output(index: int) -> str:
        name, args, source = calls[index]
        renderer = registry.get(name)
        if renderer is None:
            return _hint(name, source, f"unknown shortcode “{name}”")
        try:
            return str(renderer(args, context))
        except Exception as exc:  # a broken plugin must never cost the visitor the page
            current_app.logger.exception("shortcode %r failed", name)
            return _hint(name, source, f"this shortcode failed: {type(exc).__name__}")

    def block_or_inline(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index not in outputs:  # run only where its HTML may stand (not in a tag)
            outputs[index] = output(index)
        return outputs[index]
    html = re.sub(rf"<p>mgsc{nonce}x(\d+)x</p>", block_or_inline, html)
    return re.sub(rf"mgsc{nonce}x(\d+)x", block_or_inline, html)


def _cached_html(key: Any, text: str, nonce: str) -> tuple[str, list[Any]]:
    store: RenderedHTML = current_app.extensions["magnet.rendered_html"]
    hit = store.get(key)
    if hit is not None:
        return hit
    prepared, calls = _extract(text, nonce)
    value = (responsive_images(markdown_to_html(prepared)), calls)
    store.put(key, value)
    return value


def render_markdown(text: str, context: dict[str, Any], cache_key: Any = None) -> Markup:
    """The full pipeline (also the admin's preview): Markdown, nh3, then shortcodes.

    `cache_key` (e.g. `("revision", id)`) keeps the sanitised HTML for later renders.
    """
    if cache_key is None:
        nonce = secrets.token_hex(6)
        prepared, calls = _extract(text, nonce)
        html = responsive_images(markdown_to_html(prepared))
    else:
        nonce = _nonce_for(cache_key)
        html, calls = _cached_html((nonce, cache_key), text, nonce)
    return Markup(_expand(html, calls, nonce, context))


def _nonce_for(cache_key: Any) -> str:
    """A placeholder nonce that is stable for one cached revision but not guessable from its
    text (it is derived from the app's secret)."""
    secret = current_app.config["SECRET_KEY"]
    return hashlib.blake2b(repr(cache_key).encode(), key=secret.encode()[:64],
                           digest_size=6).hexdigest()


def render_item(item: Any, request: Any) -> Markup:
    """An item's body as the theme shows it (cached per revision)."""
    body = item.body or ""
    key = ("revision", item.revision_id,
           hashlib.blake2b(body.encode(), digest_size=16).hexdigest()) if item.revision_id else None
    return render_markdown(body, {"request": request, "item": item}, cache_key=key)


def render_fragment(text: str, item: Any, request: Any) -> Markup:
    """Markdown kept outside the body (a landing page section's text), through the same
    pipeline; cached per revision and text like a body."""
    revision = getattr(item, "revision_id", None)
    key = ("fragment", revision,
           hashlib.blake2b(text.encode(), digest_size=16).hexdigest()) if revision else None
    return render_markdown(text, {"request": request, "item": item}, cache_key=key)


def plain_text(html: str) -> str:
    """Text of some HTML, for reading time and descriptions."""
    return re.sub(r"\s+", " ", nh3.clean(html, tags=set())).strip()
