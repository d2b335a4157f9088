"""JavaScript regular expressions (`new RegExp(pattern)`, no flags) run with Python's `re`.

promptfoo's `regex` assertion is JavaScript's: `$` matches only at the very end (not
before a trailing newline), `.` stops at any line terminator, `\\w` `\\d` `\\b` are ASCII,
`\\s` is Unicode whitespace, named groups are `(?<name>...)`, and Python-only syntax such
as inline `(?i)` or `(?P<name>...)` is a syntax error. `translate` rewrites a JavaScript
pattern into an equivalent Python one, or raises `JSRegexError` where JavaScript would.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["JSRegexError", "compile_js", "translate"]


class JSRegexError(ValueError):
    """A pattern JavaScript's RegExp constructor rejects."""


# JavaScript's \s: its WhiteSpace and LineTerminator code points
_JS_SPACE = (
    "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_LINE_TERMINATORS = "\\n\\r\\u2028\\u2029"
_PASS_THROUGH = set("dDwWSbBfnrtv0123456789")


def translate(pattern: str) -> str:
    """A JavaScript RegExp source -> a Python pattern with the same matches (re.ASCII)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0
    depth = 0
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise JSRegexError("\\ at end of pattern")
            nxt = pattern[i + 1]
            i += 2
            if nxt == "s":
                out.append(_JS_SPACE if in_class else f"[{_JS_SPACE}]")
            elif nxt == "S" and not in_class:
                out.append(f"[^{_JS_SPACE}]")
            elif nxt == "b" and in_class:
                out.append("\\x08")  # [\b] is a backspace
            elif nxt in _PASS_THROUGH:  # \d \w \b and their negations: ASCII via re.ASCII
                out.append("\\" + nxt)
            elif nxt == "k" and not in_class and i < n and pattern[i] == "<":
                end = pattern.find(">", i)
                if end < 0:
                    raise JSRegexError("Invalid named reference")
                out.append(f"(?P={pattern[i + 1 : end]})")
                i = end + 1
            elif nxt == "u" and re.match(r"[0-9a-fA-F]{4}", pattern[i : i + 4]):
                out.append("\\u" + pattern[i : i + 4])
                i += 4
            elif nxt == "x" and re.match(r"[0-9a-fA-F]{2}", pattern[i : i + 2]):
                out.append("\\x" + pattern[i : i + 2])
                i += 2
            elif nxt == "c" and i < n and pattern[i].isascii() and pattern[i].isalpha():
                out.append(re.escape(chr(ord(pattern[i]) % 32)))
                i += 1
            else:  # an identity escape: the character itself
                out.append(re.escape(nxt))
            continue
        if in_class:
            if ch == "]" and i > class_start:
                in_class = False
                out.append("]")
            elif ch == "[":
                out.append("\\[")
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "[":
            if pattern.startswith("[^]", i):
                out.append("[\\s\\S]")
                i += 3
                continue
            if pattern.startswith("[]", i):
                out.append("(?!)")
                i += 2
                continue
            in_class = True
            out.append("[")
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            class_start = i
            continue
        if ch == "(":
            depth += 1
            if pattern.startswith("(?", i):
                rest = pattern[i + 2 : i + 4]
                if rest[:1] in (":", "=", "!") or rest in ("<=", "<!"):
                    out.append("(?" + (rest[:1] if rest[:1] in ":=!" else rest))
                    i += 3 if rest[:1] in ":=!" else 4
                    continue
                named = re.match(r"\(\?<([A-Za-z_$][\w$]*)>", pattern[i:])
                if named:
                    out.append(f"(?P<{named.group(1)}>")
                    i += named.end()
                    continue
                raise JSRegexError(f"Invalid group at position {i}: {pattern[i : i + 4]!r}")
            out.append("(")
            i += 1
            continue
        if ch == ")":
            depth -= 1
            if depth < 0:
                raise JSRegexError("Unmatched ')'")
        if ch == "$":
            out.append("(?![\\s\\S])")
        elif ch == ".":
            out.append(f"[^{_LINE_TERMINATORS}]")
        else:
            out.append(ch)
        i += 1
    if in_class:
        raise JSRegexError("Unterminated character class")
    return "".join(out)


@lru_cache(maxsize=256)
def compile_js(pattern: str) -> re.Pattern[str]:
    """JavaScript `new RegExp(pattern)` as a compiled Python pattern; `.search` is `.test`."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as exc:
        raise JSRegexError(str(exc)) from None
