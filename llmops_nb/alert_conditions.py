"""The alert condition language: a small tokenizer and a recursive-descent parser.

    p95_ms > 2000
    error_rate > 5% and calls >= 20
    (cost > 5 or p95_ms > 1500) and not calls < 10

A condition compares window metrics with numbers, joined by `and`, `or`, `not` and
parentheses. It is parsed into a tree that is evaluated against a dict of metrics: no
Python is ever evaluated, so a stored rule cannot run code. A metric that a window has
no value for (a percentile with no calls) makes its comparison false.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import LLMOpsError
from .monitoring import STAT_KEYS

__all__ = ["METRICS", "Condition", "ConditionError", "parse_condition"]

METRICS: tuple[str, ...] = STAT_KEYS
"""The metrics a condition may name: what `monitoring.window_stats` measures."""

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>>=|<=|==|!=|>|<)"
    r"|(?P<paren>[()])"
)
_KEYWORDS = ("and", "or", "not")
MAX_LENGTH = 500


class ConditionError(LLMOpsError, ValueError):
    """An alert condition that does not parse, or names an unknown metric."""


@dataclass(frozen=True)
class _Token:
    kind: str  # number, word, op, paren, keyword, end
    text: str
    pos: int


@dataclass(frozen=True)
class Compare:
    metric: str
    op: str
    value: float

    def holds(self, stats: Mapping[str, float | int | None]) -> bool:
        measured = stats.get(self.metric)
        return measured is not None and _OPERATORS[self.op](float(measured), self.value)


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" or "or"
    left: Node
    right: Node

    def holds(self, stats: Mapping[str, float | int | None]) -> bool:
        if self.op == "and":
            return self.left.holds(stats) and self.right.holds(stats)
        return self.left.holds(stats) or self.right.holds(stats)


@dataclass(frozen=True)
class Not:
    operand: Node

    def holds(self, stats: Mapping[str, float | int | None]) -> bool:
        return not self.operand.holds(stats)


Node = Compare | BoolOp | Not


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text, its tree, and the metrics it reads."""

    text: str
    tree: Node
    metrics: tuple[str, ...]

    def holds(self, stats: Mapping[str, float | int | None]) -> bool:
        return self.tree.holds(stats)

    def measured(self, stats: Mapping[str, float | int | None]) -> str:
        """The metrics it reads with their values, e.g. 'error_rate=0.5, calls=12'."""
        return ", ".join(f"{name}={_show(stats.get(name))}" for name in self.metrics)


def parse_condition(text: str) -> Condition:
    """Parse TEXT or raise ConditionError pointing at the position (a caret line)."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError(
            "an alert condition is text such as 'p95_ms > 2000' or 'error_rate > 0.05'"
        )
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"an alert condition is at most {MAX_LENGTH} characters long")
    if "\n" in text or "\r" in text:
        raise ConditionError("an alert condition is one line")
    parser = _Parser(text, _tokens(text))
    tree = parser.expression()
    end = parser.peek()
    if end.kind != "end":
        parser.fail(end, "expected 'and', 'or' or the end of the condition")
    return Condition(text, tree, tuple(dict.fromkeys(parser.metrics)))


def _tokens(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise ConditionError(_pointed(text, pos, f"unexpected character {text[pos]!r}"))
        kind = found.lastgroup or ""
        if kind != "space":
            word = found.group()
            if kind == "word" and word.lower() in _KEYWORDS:
                kind, word = "keyword", word.lower()
            tokens.append(_Token(kind, word, pos))
        pos = found.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """expression := and_expr ('or' and_expr)*;  and_expr := unary ('and' unary)*;
    unary := 'not' unary | '(' expression ')' | METRIC OP NUMBER."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text, self.tokens, self.at = text, tokens, 0
        self.metrics: list[str] = []
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: _Token, message: str) -> None:
        raise ConditionError(_pointed(self.text, token.pos, message))

    def expression(self) -> Node:
        node = self.and_expr()
        while self.peek().text == "or" and self.peek().kind == "keyword":
            self.take()
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.peek().text == "and" and self.peek().kind == "keyword":
            self.take()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        token = self.take()
        if token.kind == "keyword" and token.text == "not":
            return Not(self.unary())
        if token.kind == "paren" and token.text == "(":
            self.depth += 1
            if self.depth > 50:
                self.fail(token, "parentheses nested too deeply")
            node = self.expression()
            close = self.take()
            if close.text != ")":
                self.fail(close, "expected ')'")
            self.depth -= 1
            return node
        if token.kind != "word":
            self.fail(token, "expected a metric such as p95_ms, or '(' or 'not'")
        if token.text not in METRICS:
            self.fail(token, f"unknown metric {token.text!r}; known: {', '.join(METRICS)}")
        op = self.take()
        if op.kind != "op":
            self.fail(op, "expected a comparison: >, >=, <, <=, == or !=")
        number = self.take()
        if number.kind != "number":
            self.fail(number, "expected a number")
        self.metrics.append(token.text)
        value = number.text
        scaled = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        return Compare(token.text, op.text, scaled)


def _pointed(text: str, pos: int, message: str) -> str:
    """The message, then the condition with a caret under position POS."""
    where = "at the end" if pos >= len(text) else f"at column {pos + 1}"
    return f"cannot parse alert condition {where}: {message}\n  {text}\n  {' ' * pos}^"


def _show(value: float | int | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
