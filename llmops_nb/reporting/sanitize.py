"""Make HTML from a notebook's outputs safe and self-contained for the report.

A notebook file is input like any other: an output's text/html may hold scripts,
event handlers, `javascript:` links or references to the network. Every fragment is
re-serialized from html.parser's tokens: text is escaped again, only inert elements
and attributes survive, and nothing may load from anywhere (only `data:` images and
`#anchors`). Our own panels' static HTML passes through unchanged in effect.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

# dropped with everything inside them
_DROP_WITH_CONTENT = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
    "template", "xmp", "noembed", "noframes", "plaintext", "textarea", "select",
    "foreignobject",
}  # fmt: skip
# dropped, their content kept
_DROP_TAG = {"link", "meta", "base", "form", "input", "button", "html", "head", "body"}
_VOID = {
    "area", "br", "col", "hr", "img", "source", "track", "wbr", "link", "meta", "base",
    "input", "embed", "param",
}  # fmt: skip
_URL_ATTRS = {
    "src", "href", "xlink:href", "action", "formaction", "poster", "background", "srcset",
    "data", "codebase", "cite", "longdesc", "usemap", "ping", "lowsrc", "dynsrc",
}  # fmt: skip
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|bmp);base64,[a-z0-9+/=\s]*$", re.I)
_CSS_URL = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.I | re.S)
_CSS_BAD = re.compile(r"@import[^;]*;?|expression\s*\(|behavior\s*:|-moz-binding", re.I)
_SCRUB = re.compile(r"[\x00-\x20\x7f]+")


def _safe_url(attr: str, value: str) -> bool:
    """Only in-page anchors and inline raster images: nothing that loads or runs."""
    compact = _SCRUB.sub("", html.unescape(value)).lower()
    if attr in ("href", "xlink:href"):
        return compact.startswith("#")
    if attr == "src":
        return bool(_DATA_IMAGE.match(compact))
    return False


def clean_css(css: str) -> str:
    """CSS that loads nothing: no @import, url() only for inline data, no '<' at all."""
    css = _CSS_BAD.sub("", css)
    css = _CSS_URL.sub(
        lambda m: m.group(0) if _DATA_IMAGE.match(_SCRUB.sub("", m.group(2))) else "none", css
    )
    # '<' cannot start a tag inside <style> in HTML, but it can inside SVG: escape it (CSS \3c)
    return css.replace("<", "\\3c ")


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip: list[str] = []  # open dropped elements
        self.open: list[str] = []  # open kept elements, closed at the end: a fragment stays whole
        self.in_style = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if self.skip:
            if tag == self.skip[-1] and not closed and tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _DROP_WITH_CONTENT:
            if not closed and tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _DROP_TAG:
            return
        kept = []
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or name in ("srcdoc", "is", "nonce"):
                continue
            if name in _URL_ATTRS and not _safe_url(name, value):
                continue
            if name == "style":
                value = clean_css(value)
            lowered = _SCRUB.sub("", html.unescape(value)).lower()
            if "javascript:" in lowered or "vbscript:" in lowered:
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(kept)}{' /' if closed else ''}>")
        if not closed and tag not in _VOID:
            self.open.append(tag)
            if tag == "style":
                self.in_style += 1

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag not in self.open:
            return  # a stray end tag must not close the report's own elements
        while self.open:
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == "style":
                self.in_style -= 1
            if top == tag:
                return

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_style:
            self.out.append(clean_css(data))
        else:
            self.out.append(html.escape(data, quote=False))

    # comments, doctypes, processing instructions and CDATA sections are dropped
    def handle_comment(self, data: str) -> None:
        pass

    def handle_decl(self, decl: str) -> None:
        pass

    def handle_pi(self, data: str) -> None:
        pass

    def unknown_decl(self, data: str) -> None:
        pass


def clean_html(fragment: str) -> str:
    """FRAGMENT with scripts, handlers, and anything that loads from elsewhere removed."""
    cleaner = _Cleaner()
    cleaner.feed(fragment)
    cleaner.close()
    out = cleaner.out
    out.extend(f"</{tag}>" for tag in reversed(cleaner.open))
    return "".join(out)
