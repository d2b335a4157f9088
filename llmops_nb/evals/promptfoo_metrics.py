"""The text metrics of promptfoo's assertions, computed the way promptfoo computes them:
`bleu` (its own sentence BLEU: lower-cased whitespace tokens, best clipped count over the
references, 1e-7 smoothing), `rouge-n` (js-rouge's unigram score over Penn Treebank
tokens) and `levenshtein` (edit distance)."""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["bleu", "levenshtein", "rouge_n", "treebank_tokens"]


def _ngrams(words: list[str], n: int) -> list[str]:
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _words(text: str) -> list[str]:
    """JavaScript's `text.toLowerCase().trim().split(/\\s+/)` ('' gives [''])."""
    return re.split(r"\s+", text.lower().strip())


def bleu(candidate: str, references: list[str]) -> float:
    """promptfoo's BLEU-4 with uniform weights; raises on an empty candidate, as it does."""
    if not candidate or not references:
        raise ValueError("Invalid inputs")
    words = _words(candidate)
    ref_words = [_words(r) for r in references]
    closest = ref_words[0]
    for ref in ref_words[1:]:
        if abs(len(ref) - len(words)) < abs(len(closest) - len(words)):
            closest = ref
    log_sum = 0.0
    for n in range(1, 5):
        grams = Counter(_ngrams(words, n))
        total = sum(grams.values())
        best = 0
        for ref in ref_words:
            ref_grams = Counter(_ngrams(ref, n))
            best = max(best, sum(min(c, ref_grams[g]) for g, c in grams.items()))
        precision = best / total if total else 0.0
        log_sum += 0.25 * math.log(precision or 1e-7)
    penalty = 1.0 if len(words) > len(closest) else math.exp(1 - len(closest) / len(words))
    return penalty * math.exp(log_sum)


def treebank_tokens(text: str) -> list[str]:
    """The Penn Treebank tokenization js-rouge uses (its common rules)."""
    if not text:
        return []
    text = re.sub(r'^"', " `` ", text)
    text = re.sub(r'([ (\[{<])"', r"\1 `` ", text)
    text = re.sub(r"\.\.\.*", " ... ", text)
    text = re.sub(r"[;@#$%&]", r" \g<0> ", text)
    text = re.sub(r"([^.])(\.)([\])}>\"']*)\s*$", r"\1 \2\3 ", text)
    text = re.sub(r"[,?!]", r" \g<0> ", text)
    text = re.sub(r"[\][(){}<>]", r" \g<0> ", text)
    text = re.sub(r"---*", " -- ", text)
    text = f" {text} "
    text = text.replace('"', " '' ")
    text = re.sub(r"([^'])' ", r"\1 ' ", text)
    text = re.sub(r"'([sSmMdD]) ", r" '\1 ", text)
    text = re.sub(r"('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r" \1 ", text)
    text = re.sub(r"  +", " ", text)
    text = re.sub(r"^ | $", "", text)
    return text.split(" ")


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """js-rouge `n()`: distinct candidate n-grams found in the reference, over the number of
    reference n-grams."""
    if not candidate or not reference:
        raise ValueError("the candidate and the reference must not be empty")
    cand = _ngrams(treebank_tokens(candidate), n)
    ref = _ngrams(treebank_tokens(reference), n)
    if not cand or not ref:
        raise ValueError("ngram size cannot be larger than the number of tokens available")
    ref_set = set(ref)
    return len({g for g in cand if g in ref_set}) / len(ref)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) over UTF-16 code units."""
    a16 = a.encode("utf-16-le")
    b16 = b.encode("utf-16-le")
    x = [a16[i : i + 2] for i in range(0, len(a16), 2)]
    y = [b16[i : i + 2] for i in range(0, len(b16), 2)]
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, start=1):
        current = [i]
        for j, cy in enumerate(y, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]
