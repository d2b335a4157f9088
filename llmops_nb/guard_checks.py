"""The detectors behind `lo.guard`: where a text holds PII, secrets or prompt injection.

Each check is a function `text -> list[Hit]` (kind, start, end), tuned for precision
on the things that look alike in real prompts: order numbers, dates, prices, UUIDs, git
SHAs, version strings and ISBNs are not PII. Validators do the deciding where one
exists: `phonenumbers` for phone numbers, the Luhn check and issuer prefixes for cards,
`python-stdnum` for IBANs and national ids. Cheap prefilters (an "@", enough digits)
skip the expensive ones, so a text with nothing in it costs a few regex scans.

`redaction` (the one masking of known secrets, URL credentials, `password=` and bearer
tokens) is reused for what it already finds; the key shapes (sk-..., AKIA..., ghp_...,
JWTs, PEM keys) live here.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from . import redaction

__all__ = [
    "CHECKS",
    "DEFAULT_REGION",
    "PLACEHOLDERS",
    "Hit",
    "injection",
    "mask_pii",
    "pii",
    "redact_hits",
    "run_check",
    "secrets",
]

DEFAULT_REGION = "US"
"""Where a phone number written without a country code is read as local."""


class Hit(NamedTuple):
    kind: str
    start: int
    end: int


# --- pii --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)
# 13-19 digits, optionally grouped by single spaces or dashes
_CARD = re.compile(r"(?<![\d\-.])\d(?:[ \-]?\d){12,18}(?![\d\-]|\.\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DIGIT_RUNS = re.compile(r"\d")
# where a phone number could be: 7+ digits with the separators numbers are written with
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])[+(]?\d(?:[\d \t().\-/]|x\d|ext\.? ?\d){5,30}\d")
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text me|contact)\b", re.I
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_VERSION_BEFORE = re.compile(r"(?:\bv|version\s*|release\s*)$", re.I)


def _emails(text: str) -> list[Hit]:
    hits = []
    for m in _EMAIL.finditer(text):
        token_start = max(text.rfind(c, 0, m.start()) for c in " \t\n\"'<(") + 1
        if "://" in text[token_start : m.start()]:
            continue  # the user:password@host of a URL, not an address
        hits.append(Hit("email", m.start(), m.end()))
    return hits


def _card_issuer(digits: str) -> bool:
    """The number starts like a card: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay."""
    two, four = int(digits[:2]), int(digits[:4])
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    if two == 62:
        return 16 <= n <= 19
    return False


def _cards(text: str) -> list[Hit]:
    from stdnum import luhn

    hits = []
    for m in _CARD.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"[ \-]", "", raw)
        separators = set(re.sub(r"\d", "", raw))
        if len(separators) > 1 or not _card_issuer(digits) or not luhn.is_valid(digits):
            continue
        hits.append(Hit("card_number", m.start(), m.end()))
    return hits


def _ibans(text: str) -> list[Hit]:
    from stdnum import iban

    hits = []
    for m in _IBAN.finditer(text):
        raw = m.group(0).rstrip()
        # a grouped IBAN may run into the next word: shorten it group by group
        candidate = raw
        while candidate:
            if iban.is_valid(candidate):
                hits.append(Hit("iban", m.start(), m.start() + len(candidate)))
                break
            cut = candidate.rfind(" ")
            if cut < 15:
                break
            candidate = candidate[:cut]
    return hits


def _ips(text: str) -> list[Hit]:
    hits = []
    if "." in text:
        for m in _IPV4.finditer(text):
            if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
                continue
            try:
                ipaddress.IPv4Address(m.group(0))
            except ValueError:
                continue
            hits.append(Hit("ip_address", m.start(), m.end()))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            raw = m.group(0)
            if len(raw) < 6 or not any(c.isdigit() for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            hits.append(Hit("ip_address", m.start(), m.end()))
    return hits


def _phone_context(text: str, start: int) -> bool:
    """A phone word just before START ("call 4155552671"), with nothing number-like between."""
    words = list(_PHONE_WORDS.finditer(text, max(0, start - 25), start))
    if not words:
        return False
    between = text[words[-1].end() : start]
    return not any(c.isdigit() or c in "[]" for c in between)


def _phones(text: str, region: str) -> list[Hit]:
    import phonenumbers

    hits = []
    for candidate in _PHONE_CANDIDATE.finditer(text):
        # the matcher is slow: run it only on the runs of digits that could be a number
        if not 7 <= sum(c.isdigit() for c in candidate.group(0)) <= 17:
            continue
        if _ISO_DATE.fullmatch(candidate.group(0).strip()):
            continue
        offset = candidate.start()
        matcher = phonenumbers.PhoneNumberMatcher(
            candidate.group(0), region, leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            raw = match.raw_string
            start, end = offset + match.start, offset + match.end
            digits = sum(c.isdigit() for c in raw)
            formatted = raw.startswith(("+", "(")) or re.search(r"\d[ .\-]\d", raw) is not None
            if digits < 7 or not (formatted or _phone_context(text, start)):
                continue  # a bare run of digits is an order number until the text says "phone"
            hits.append(Hit("phone_number", start, end))
    return hits


def _validator(module: str) -> Callable[[str], bool]:
    import importlib

    return importlib.import_module(f"stdnum.{module}").is_valid  # type: ignore[no-any-return]


# national ids: (kind, pattern, stdnum module); only formats distinctive enough to read
_NATIONAL_IDS = (
    ("us_ssn", re.compile(r"(?<![\d\-])\d{3}-\d{2}-\d{4}(?![\d\-])"), "us.ssn"),
    ("ca_sin", re.compile(r"(?<![\d\-])\d{3}[ \-]\d{3}[ \-]\d{3}(?![\d\-])"), "ca.sin"),
    ("br_cpf", re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?!\d)"), "br.cpf"),
    ("es_dni", re.compile(r"\b\d{8}-?[A-HJ-NP-TV-Z]\b"), "es.dni"),
    (
        "it_codice_fiscale",
        re.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPRST]\d{2}[A-Z]\d{3}[A-Z]\b"),
        "it.codicefiscale",
    ),
    ("in_aadhaar", re.compile(r"(?<!\d)(?<!\d )[2-9]\d{3} \d{4} \d{4}(?!\d| \d)"), "in_.aadhaar"),
)


def _national_ids(text: str) -> list[Hit]:
    hits = []
    for kind, pattern, module in _NATIONAL_IDS:
        for m in pattern.finditer(text):
            if _validator_cached(module)(m.group(0)):
                hits.append(Hit(kind, m.start(), m.end()))
    return hits


_validator_cached = lru_cache(maxsize=None)(_validator)


def pii(text: str, region: str = DEFAULT_REGION) -> list[Hit]:
    """Emails, phone numbers, card numbers, IBANs, IP addresses and national ids in TEXT."""
    hits: list[Hit] = []
    if "@" in text:
        hits += _emails(text)
    if "." in text or ":" in text:
        hits += _ips(text)
    digits = len(_DIGIT_RUNS.findall(text))
    if digits >= 7:
        hits += _national_ids(text)
    if digits >= 9:
        hits += _cards(text)
    if digits >= 11:
        hits += _ibans(text)
    if digits >= 7:
        taken = [(h.start, h.end) for h in hits]
        for hit in _phones(text, region):  # a card or IBAN is not also a phone number
            if not any(hit.start < end and start < hit.end for start, end in taken):
                hits.append(hit)
    return hits


# --- secrets ----------------------------------------------------------------------------

_KEY_SHAPES = (
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("stripe_key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    (
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
    ),
)
_SHAPES = [(kind, re.compile(pattern)) for kind, pattern in _KEY_SHAPES]
_SHAPE_HINT = re.compile(
    r"sk-|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|xox|AIza|k_live|k_test|hf_|eyJ|-----BEGIN"
)
# key = value where the name says secret and the value looks random
_ASSIGNED = re.compile(
    r"""(?i)\b([\w.\-]*(?:key|token|secret|passw(?:or)?d|pwd|credential|auth)[\w.\-]*)"""
    r"""["']?\s*[:=]\s*["']?([A-Za-z0-9/+_\-.=~]{16,})"""
)
_NOT_SECRET_NAMES = re.compile(
    r"(?i)(?:^|[_.\-])(?:cache|sort|primary|foreign|partition|idempotency|dedup|row|public)"
    r"[_.\-]?key$|tokens?_?(?:count|len|length|limit|ids?)$|^max_?tokens$"
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _entropy(value: str) -> float:
    counts: dict[str, int] = {}
    for c in value:
        counts[c] = counts.get(c, 0) + 1
    n = len(value)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


def _random_looking(value: str) -> bool:
    """A credential-like value: long, letters and digits mixed, high entropy, not a UUID."""
    if _UUID.match(value) or value.isdigit() or value.isalpha():
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and _entropy(value) >= 3.5


def secrets(text: str) -> list[Hit]:
    """API keys by their shapes, PEM private keys, random-looking values assigned to
    secret-named keys, and what `redaction` masks (known keys, URL passwords, bearer)."""
    hits: list[Hit] = []
    if _SHAPE_HINT.search(text):
        for kind, pattern in _SHAPES:
            hits += [Hit(kind, m.start(), m.end()) for m in pattern.finditer(text)]
    if ":" in text or "=" in text:
        for m in _ASSIGNED.finditer(text):
            name, value = m.group(1), m.group(2)
            if not _NOT_SECRET_NAMES.search(name) and _random_looking(value):
                hits.append(Hit("assigned_secret", m.start(2), m.end(2)))
    for kind, start, end in redaction.secret_spans(text):
        token = text[start:end].split()[-1]
        if kind == "bearer_token" and not (len(token) >= 16 and _random_looking(token)):
            continue  # "Basic settings", "Token counts": words, not credentials
        hits.append(Hit(kind, start, end))
    return hits


# --- injection --------------------------------------------------------------------------

_OVERRIDES = re.compile(
    r"""(?ix)
    \b(?:ignore|disregard|forget|skip|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*
        (?:previous|prior|above|earlier|preceding|foregoing|former|system|original|initial)\s+
        (?:\w+\s+)?(?:instructions?|prompts?|rules|directions|messages?|context|guidelines)
    | \bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)
    | \byou\s+are\s+now\s+(?:(?:a|an|the|in)\s+)?(?:\w+\s+){0,2}?
        (?:ai|assistant|chatbot|bot|model|dan|jailbroken|unrestricted|unfiltered|uncensored
           |evil|developer\s+mode|god\s+mode|free\s+from|no\s+longer\s+bound)\b
    | \bfrom\s+now\s+on,?\s+you\s+(?:are|will|must|have\s+no)\b
    | \b(?:reveal|show|print|output|repeat|tell|display|leak|disclose|dump|give)
        \s+(?:me\s+|us\s+)?(?:your|the)\s+(?:full\s+|entire\s+|exact\s+)?
        (?:system|initial|original|hidden|secret|developer)\s+(?:prompt|instructions?|message)
    | \bwhat\s+(?:is|are|was|were)\s+your\s+(?:system|initial|original|hidden|secret)\s+
        (?:prompt|instructions?)
    | \b(?:do\s+anything\s+now|developer\s+mode\s+(?:enabled|on)|jailbreak(?:ed)?\s+mode)\b
    | \bpretend\s+(?:that\s+)?you\s+(?:are|have)\s+no\s+
        (?:rules|restrictions|guidelines|filters|limits)
    | \b(?:bypass|disable|turn\s+off|override)\s+(?:your|the|all)\s+(?:\w+\s+)?
        (?:safety|content\s+policy|rules|restrictions|guardrails|filters|guidelines)
    | \bnew\s+(?:system\s+)?instructions?\s*:
    """
)
_ROLE_MARKERS = re.compile(
    r"""(?imx)
    <\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text
        |start_header_id|end_header_id|eot_id|eom_id)\|>
    | \[/?INST\] | <</?SYS>>
    | ^[ \t]*\#{2,6}[ \t]*(?:system|assistant)[ \t]*$
    | ^[ \t]*\#{2,6}[ \t]*(?:system|assistant|instruction|response)[ \t]*:
    | </?(?:system|assistant)(?:_prompt)?>
    | ^[ \t]*\[(?:system|assistant)\][ \t]*:?
    """
)
# zero-width and bidi controls; a ZWJ between emoji is how families and flags are written
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e]+")
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{80,}={0,2}(?![A-Za-z0-9+/=_\-])")


def _emoji(char: str) -> bool:
    code = ord(char)
    return code >= 0x1F000 or 0x2600 <= code <= 0x27BF or code in (0xFE0F, 0x20E3)


def _base64_blob(value: str) -> bool:
    body = value.rstrip("=")
    if not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
        return False  # hex digests and words-with-dashes are not base64
    if not any(c.isdigit() for c in body) or body.count("/") > len(body) // 10:
        return False
    return len(set(body)) >= 20


def injection(text: str) -> list[Hit]:
    """Instruction-override phrasing, chat role markers smuggled into text, zero-width
    and bidi control characters, and long base64 blobs."""
    hits = [Hit("instruction_override", m.start(), m.end()) for m in _OVERRIDES.finditer(text)]
    if "<" in text or "[" in text or "#" in text:
        hits += [Hit("role_marker", m.start(), m.end()) for m in _ROLE_MARKERS.finditer(text)]
    for m in INVISIBLE.finditer(text):
        run = m.group(0)
        if run == "\u200d" and 0 < m.start() and m.end() < len(text):
            if _emoji(text[m.start() - 1]) and _emoji(text[m.end()]):
                continue
        kind = "bidi_control" if any(c in _BIDI for c in run) else "invisible_characters"
        hits.append(Hit(kind, m.start(), m.end()))
    if len(text) >= 80:
        for m in _BASE64.finditer(text):
            if _base64_blob(m.group(0)):
                hits.append(Hit("base64_blob", m.start(), m.end()))
    return hits


CHECKS: dict[str, Callable[..., list[Hit]]] = {
    "pii": pii,
    "secrets": secrets,
    "injection": injection,
}
"""Check name -> detector; `lo.guard(checks=[...])` takes these names."""

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone_number": "[PHONE]",
    "card_number": "[CARD]",
    "iban": "[IBAN]",
    "ip_address": "[IP]",
    "instruction_override": "[INSTRUCTION]",
    "role_marker": "[ROLE]",
    "invisible_characters": "",
    "bidi_control": "",
    "base64_blob": "[BASE64]",
}
"""What a finding becomes in redacted text; national ids are [ID], secrets [SECRET]."""


def placeholder(check: str, kind: str) -> str:
    found = PLACEHOLDERS.get(kind)
    if found is not None:
        return found
    return "[SECRET]" if check == "secrets" else "[ID]"


def run_check(name: str, text: str, **options: Any) -> list[Hit]:
    """The hits of one check, longest first where they overlap, in text order."""
    fn = CHECKS[name]
    hits = fn(text, **options) if name == "pii" else fn(text)
    return sorted(set(hits), key=lambda h: (h.start, -h.end))


def redact_hits(text: str, hits: list[tuple[str, Hit]]) -> str:
    """TEXT with each (check, hit) replaced by its placeholder; overlapping hits become one."""
    if not hits:
        return text
    ordered = sorted(hits, key=lambda ch: (ch[1].start, -ch[1].end))
    out: list[str] = []
    cursor = 0
    for check, hit in ordered:
        if hit.end <= cursor:
            continue  # inside what is already replaced
        start = max(hit.start, cursor)
        out.append(text[cursor:start])
        if start == hit.start:
            out.append(placeholder(check, hit.kind))
        cursor = hit.end
    out.append(text[cursor:])
    return "".join(out)


def mask_pii(text: str) -> str:
    """TEXT with its PII replaced by placeholders ([EMAIL], [PHONE], ...): the
    `redact_pii` setting runs this on everything stored."""
    hits = pii(text)
    return redact_hits(text, [("pii", h) for h in hits]) if hits else text
