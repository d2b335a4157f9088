"""Assertion cases with the verdict promptfoo gives, written from promptfoo's assertion
documentation and handlers (src/assertions/*.ts): (test, output, promptfoo passes).

Each case is one promptfoo test (its `assert` list, and its `threshold` or `options`
where the case is about those) and the output the provider returns for it.
"""

from __future__ import annotations

from typing import Any

Case = tuple[dict[str, Any], str, bool]


def _a(type_: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, **extra}
    if value is not None:
        out["value"] = value
    return out


def _t(*asserts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"assert": list(asserts), **extra}


DATE_SCHEMA = {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}
GEO_SCHEMA = {
    "type": "object",
    "required": ["lat", "lon"],
    "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
    },
}
EMAIL_SCHEMA = {"type": "object", "properties": {"e": {"type": "string", "format": "email"}}}

CASES: list[Case] = [
    # contains-any / contains-all: a quoted item keeps its comma, items are trimmed
    (_t(_a("contains-any", '"hello, world",universe')), "say hello, world", True),
    (_t(_a("contains-any", '"hello, world",universe')), "hello there, world", False),
    (_t(_a("contains-any", "cat,  dog")), "hotdog", True),
    (_t(_a("contains-any", [1, 2])), "a2", True),
    (_t(_a("contains-all", '"hello, world",universe')), "hello, world and universe", True),
    (_t(_a("contains-all", '"hello, world",universe')), "hello world universe", False),
    (_t(_a("not-contains-any", ["x", "y"])), "abc", True),
    (_t(_a("icontains-any", ["HELLO", "bye"])), "hello", True),
    (_t(_a("icontains-any", "FOO,BAR")), "a bar", True),
    (_t(_a("icontains-all", ["A", "b"])), "a B", True),
    (_t(_a("icontains-all", ["A", "b"])), "a", False),
    # contains / icontains / starts-with
    (_t(_a("contains", 5)), "15", True),
    (_t(_a("icontains", "ÄPFEL")), "äpfel", True),
    (_t(_a("not-icontains", "error")), "All fine", True),
    (_t(_a("starts-with", "Hello")), "Hello world", True),
    (_t(_a("starts-with", "Hello")), " Hello world", False),
    # equals: strict, no trimming; objects by deep JSON equality
    (_t(_a("equals", "Paris")), "Paris\n", False),
    (_t(_a("equals", "Paris")), "Paris", True),
    (_t(_a("equals", 42)), "42", True),
    (_t(_a("equals", {"a": 1})), '{"a":1}', True),
    (_t(_a("equals", {"a": 1})), '{"a": 1, "b": 2}', False),
    (_t(_a("equals", {"a": 1})), "not json", False),
    (_t(_a("not-equals", {"a": 1})), "not json", True),
    (_t(_a("equals", {"flag": True})), '{"flag": 1}', False),
    (_t(_a("equals", [1, 2])), "[1, 2]", True),
    (_t(_a("equals", "{{city}}"), vars={"city": "Rome"}), "Rome", True),
    # regex: JavaScript semantics
    (_t(_a("regex", "end$")), "the end\n", False),
    (_t(_a("regex", "end$")), "the end", True),
    (_t(_a("regex", "^\\w+$")), "café", False),
    (_t(_a("regex", "\\d")), "٣", False),
    (_t(_a("regex", "(?<year>\\d{4})-\\k<year>")), "2024-2024", True),
    (_t(_a("regex", "(?i)hello")), "hello", False),
    (_t(_a("not-regex", "(?i)hello")), "bye", False),
    (_t(_a("regex", "a.b")), "a\rb", False),
    (_t(_a("regex", "^b")), "a\nb", False),
    (_t(_a("regex", "\\bcat\\b")), "concat cat", True),
    (_t(_a("regex", "(?<=\\$)\\d+")), "$42", True),
    (_t(_a("regex", "\\s")), "a\u00a0b", True),
    # is-json
    (_t(_a("is-json")), '```json\n{"a": 1}\n```', False),
    (_t(_a("is-json")), "NaN", False),
    (_t(_a("is-json")), '{"a": NaN}', False),
    (_t(_a("is-json")), ' {"a": 1} ', True),
    (_t(_a("is-json")), '"just a string"', True),
    (_t(_a("not-is-json")), "hello", True),
    (_t(_a("is-json", "type: object\nrequired: [name]")), '{"name": "x"}', True),
    (_t(_a("is-json", "type: object\nrequired: [name]")), '{"age": 1}', False),
    (_t(_a("is-json", DATE_SCHEMA)), '{"d": "2024-02-30"}', False),
    (_t(_a("is-json", DATE_SCHEMA)), '{"d": "2024-02-29"}', True),
    (_t(_a("is-json", EMAIL_SCHEMA)), '{"e": "not-an-email"}', False),
    (_t(_a("is-json", EMAIL_SCHEMA)), '{"e": "ana@example.com"}', True),
    # contains-json
    (_t(_a("contains-json")), 'Here: {"a": 1} done', True),
    (_t(_a("contains-json")), "no json here", False),
    (_t(_a("contains-json", {"required": ["b"]})), 'x {"a": 1} y {"b": 2}', True),
    (_t(_a("not-contains-json")), "plain", True),
    (_t(_a("contains-json")), 'notes \n {"k": "v", "n": {"m": ["x", "y"]}} \n more', True),
    (_t(_a("contains-json", GEO_SCHEMA)), 'the answer\n\n```{"lat": 80.1, "lon": -1}```', True),
    (_t(_a("contains-json", GEO_SCHEMA)), 'the answer\n\n```{"lat": "high", "lon": -1}```', False),
    # levenshtein (default threshold 5)
    (_t(_a("levenshtein", "hello")), "hallo", True),
    (_t(_a("levenshtein", "kitten", threshold=2)), "sitting", False),
    (_t(_a("levenshtein", "kitten", threshold=3)), "sitting", True),
    # bleu (default 0.5) with one or several references
    (_t(_a("bleu", "the cat sat on the mat")), "the cat sat on the mat", True),
    (
        _t(_a("bleu", ["completely different words here", "the cat sat on the mat"])),
        "the cat sat on the mat",
        True,
    ),
    (_t(_a("bleu", "the cat sat on the mat")), "dogs run fast", False),
    (_t(_a("not-bleu", "the cat sat on the mat")), "the cat sat on the mat", False),
    # rouge-n (default 0.75)
    (_t(_a("rouge-n", "the quick brown fox")), "the quick brown fox jumps", True),
    (_t(_a("rouge-n", "the quick brown fox jumps over")), "the fox", False),
    (_t(_a("rouge-n", "the quick brown fox jumps over", threshold=0.3)), "the fox", True),
    # transforms
    (_t(_a("equals", "Paris", transform="output.trim()")), "  Paris \n", True),
    (_t(_a("equals", "42", transform="JSON.parse(output).answer")), '{"answer": 42}', True),
    (_t(_a("contains", "HELLO", transform="output.toUpperCase()")), "hello", True),
    (_t(_a("equals", "Paris"), options={"transform": "output.trim()"}), " Paris ", True),
    # the test's verdict: threshold and weight
    (_t(_a("contains", "a"), _a("contains", "zzz"), threshold=0.5), "a", True),
    (_t(_a("contains", "a"), _a("contains", "zzz"), threshold=0.6), "a", False),
    (_t(_a("contains", "a", weight=3), _a("contains", "zzz"), threshold=0.75), "a", True),
    (_t(_a("contains", "a"), _a("contains", "zzz", weight=0)), "a", False),
    (_t(_a("contains", "a"), _a("contains", "zzz", weight=0), threshold=0.5), "a", True),
    (_t(_a("contains", "zzz"), threshold=0), "a", True),
    (
        _t(_a("contains", "a", metric="accuracy"), _a("contains", "b", metric="accuracy")),
        "ab",
        True,
    ),
    # llm-rubric (the judge answers per the rubric's keyword, see JUDGE_REPLIES)
    (_t(_a("llm-rubric", "JUDGE_PASS is polite")), "Thanks!", True),
    (_t(_a("llm-rubric", "JUDGE_FAIL is polite")), "Go away", False),
    (_t(_a("llm-rubric", "JUDGE_LOW is polite", threshold=0.5)), "Hm", False),
]

JUDGE_REPLIES = {
    "JUDGE_PASS": '{"reason": "fits", "pass": true, "score": 1}',
    "JUDGE_FAIL": '{"reason": "does not fit", "pass": false, "score": 0}',
    "JUDGE_LOW": '{"reason": "partly", "pass": true, "score": 0.4}',
}
