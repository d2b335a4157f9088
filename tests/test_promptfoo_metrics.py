"""The pieces of promptfoo's semantics, checked directly: its BLEU, js-rouge's ROUGE-N,
edit distance over UTF-16, comma lists, JavaScript regex translation, JSON strictness."""

from __future__ import annotations

import pytest

from llmops_nb.evals.jsregex import JSRegexError, compile_js
from llmops_nb.evals.promptfoo_assertions import PromptfooError, parse_comma_values
from llmops_nb.evals.promptfoo_json import extract_json_objects, js_json_parse
from llmops_nb.evals.promptfoo_metrics import bleu, levenshtein, rouge_n, treebank_tokens
from llmops_nb.evals.promptfoo_transforms import js_string


def test_bleu_behaves_as_promptfoos() -> None:
    mat = "The cat sat on the mat."
    assert bleu(mat, [mat]) > 0.999
    assert 0.0 < bleu("Dogs run in the park.", [mat]) < 0.001  # smoothed, never 0
    assert 0.5 < bleu("The dog sat on the mat.", [mat]) < 1.0
    assert bleu("cat", ["cat"]) > 0.0
    # the brevity penalty uses the reference closest in length; the best reference counts
    assert (
        bleu("The cat sat on mat.", ["The cat sat on mat.", "Cat mat.", "A cat is here."]) > 0.999
    )
    assert bleu("The small cat sat.", ["A cat was sitting.", "The small cat sat."]) > 0.999
    with pytest.raises(ValueError, match="Invalid inputs"):
        bleu("test", [])


def test_rouge_n_is_distinct_matches_over_reference_unigrams() -> None:
    assert treebank_tokens("The cat sat, quietly.") == ["The", "cat", "sat", ",", "quietly", "."]
    assert rouge_n("the the fox", "the fox jumps") == pytest.approx(2 / 3)
    assert rouge_n("The fox", "the fox") == pytest.approx(0.5)  # case matters


def test_levenshtein_counts_utf16_units() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("a😀", "a") == 2  # an emoji is two UTF-16 code units


def test_comma_lists_keep_quoted_commas() -> None:
    assert parse_comma_values('"hello, world",universe') == ["hello, world", "universe"]
    assert parse_comma_values(" a , ,b ") == ["a", "b"]
    assert parse_comma_values('"say ""hi""", "back\\"slash"') == ['say "hi"', 'back"slash']
    with pytest.raises(PromptfooError, match="Unterminated"):
        parse_comma_values('"open, ended')
    with pytest.raises(PromptfooError, match="Expected comma"):
        parse_comma_values('"a" b')


def test_javascript_regex_semantics() -> None:
    assert compile_js("end$").search("end") and not compile_js("end$").search("end\n")
    assert not compile_js(r"^\w+$").search("naïve")
    assert compile_js(r"[\s]x").search("\u2003x")  # JavaScript's \s is Unicode
    assert compile_js(r"[^]").search("\n") and not compile_js(r"[]").search("x")
    assert compile_js(r"(?<d>\d)\k<d>").search("a11")
    assert compile_js(r"[\b]").search("\x08")
    for bad in ("(?i)x", "(?P<n>x)", "(?#note)", "[abc", "a)"):
        with pytest.raises(JSRegexError):
            compile_js(bad)


def test_json_is_strict_and_embedded_objects_are_found() -> None:
    assert js_json_parse(' {"a": [1, 2.5, null]} ') == {"a": [1, 2.5, None]}
    for bad in ("NaN", '{"a": Infinity}', "```json\n{}\n```", "{'a': 1}"):
        with pytest.raises(ValueError):
            js_json_parse(bad)
    assert extract_json_objects('a {"x": {"y": 1}} b {"z": 2}') == [{"x": {"y": 1}}, {"z": 2}]
    assert extract_json_objects("{ not closed") == []


def test_values_print_as_javascript_prints_them() -> None:
    assert [js_string(v) for v in (True, None, 3.0, 2.5, [1, "a"], {"k": "é"})] == [
        "true",
        "null",
        "3",
        "2.5",
        '[1,"a"]',
        '{"k":"é"}',
    ]
