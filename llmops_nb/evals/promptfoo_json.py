"""promptfoo's JSON checks: `is-json` and `contains-json`, with JSON.parse's strictness and
ajv's schema validation (draft-07, ajv-formats formats such as `date` and `email`)."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from datetime import date
from functools import lru_cache
from typing import Any

__all__ = ["SchemaError", "extract_json_objects", "js_json_parse", "schema_errors"]


class SchemaError(ValueError):
    """A schema ajv would not compile: the assertion fails with 'Invalid JSON schema'."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def js_json_parse(text: str) -> Any:
    """JSON.parse: strict JSON only (no NaN/Infinity, no code fences)."""
    return json.loads(text, parse_constant=_reject_constant)


def extract_json_objects(text: str) -> list[Any]:
    """Every JSON object embedded in TEXT, as promptfoo finds them: from each '{', the
    shortest span that parses (JSON, or a YAML flow mapping) as an object."""
    import yaml

    found: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] != "{":
            i += 1
            continue
        end = _parse_from(text, i, yaml)
        if end is None:
            i += 1
            continue
        found.append(end[0])
        i = end[1]
    return found


def _parse_from(text: str, start: int, yaml: Any) -> tuple[Any, int] | None:
    j = text.find("}", start)
    while j >= 0:
        chunk = text[start : j + 1]
        try:
            value = json.loads(chunk, parse_constant=_reject_constant)
        except ValueError:
            try:
                value = yaml.safe_load(chunk)
            except yaml.YAMLError:
                value = None
        if isinstance(value, dict | list):
            return value, j + 1
        j = text.find("}", j + 1)
    return None


# --- formats (ajv-formats, "full" mode) --------------------------------------------------

_DATE = re.compile(r"^(\d\d\d\d)-(\d\d)-(\d\d)$")
_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d(?:\.\d+)?)(z|[+-]\d\d(?::?\d\d)?)$", re.I)
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    re.I,
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[-0-9a-z]{0,61}[0-9a-z])?)*\.?$",
    re.I,
)
_UUID = re.compile(r"^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$", re.I)
_IPV4 = re.compile(
    r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
)
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s]*$", re.I)
_URL = re.compile(r"^(?:https?|ftp)://[^\s/$.?#][^\s]*$", re.I)


def _is_date(value: str) -> bool:
    match = _DATE.match(value)
    if not match:
        return False
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _is_time(value: str) -> bool:
    match = _TIME.match(value)
    if not match:
        return False
    hour, minute, second = int(match[1]), int(match[2]), float(match[3])
    return hour <= 23 and minute <= 59 and second < 61


def _is_date_time(value: str) -> bool:
    parts = re.split(r"t|\s", value, maxsplit=1, flags=re.I)
    return len(parts) == 2 and _is_date(parts[0]) and _is_time(parts[1])


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _is_regex(value: str) -> bool:
    from .jsregex import JSRegexError, compile_js

    try:
        compile_js(value)
    except JSRegexError:
        return False
    return True


def _is_byte(value: str) -> bool:
    if not re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", value):
        return False
    base64.b64decode(value)
    return True


_STRING_FORMATS = {
    "date": _is_date,
    "time": _is_time,
    "date-time": _is_date_time,
    "email": lambda v: bool(_EMAIL.match(v)),
    "hostname": lambda v: bool(_HOSTNAME.match(v)),
    "uuid": lambda v: bool(_UUID.match(v)),
    "ipv4": lambda v: bool(_IPV4.match(v)),
    "ipv6": _is_ipv6,
    "uri": lambda v: bool(_URI.match(v)),
    "url": lambda v: bool(_URL.match(v)),
    "regex": _is_regex,
    "byte": _is_byte,
    "password": lambda v: True,
    "binary": lambda v: True,
}
_NUMBER_FORMATS = {
    "int32": lambda v: float(v).is_integer() and -(2**31) <= v < 2**31,
    "int64": lambda v: float(v).is_integer() and abs(v) <= 2**53,
    "float": lambda v: True,
    "double": lambda v: True,
}


@lru_cache(maxsize=1)
def _format_checker() -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, check in _STRING_FORMATS.items():
        checker.checks(name)(lambda v, check=check: not isinstance(v, str) or check(v))
    for name, check in _NUMBER_FORMATS.items():
        checker.checks(name)(
            lambda v, check=check: isinstance(v, bool) or not isinstance(v, int | float) or check(v)
        )
    return checker


def _formats_in(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["format"]} if isinstance(schema.get("format"), str) else set()
        for value in schema.values():
            found |= _formats_in(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_formats_in(v) for v in schema)) if schema else set()
    return set()


def load_schema(value: Any) -> Any:
    """An assertion's schema: an object, or YAML/JSON text, as promptfoo reads it."""
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise SchemaError(str(exc).splitlines()[0]) from None
    if not isinstance(value, dict | bool):
        raise SchemaError("the schema must be an object or a boolean")
    unknown = _formats_in(value) - set(_STRING_FORMATS) - set(_NUMBER_FORMATS)
    if unknown:
        raise SchemaError(f'unknown format "{sorted(unknown)[0]}"')
    return value


def schema_errors(data: Any, schema: Any) -> str | None:
    """None when DATA is valid against SCHEMA (draft-07, formats checked), else why not."""
    import jsonschema

    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(exc.message) from None
    validator = jsonschema.Draft7Validator(schema, format_checker=_format_checker())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if not errors:
        return None
    return "; ".join(f"{'/'.join(map(str, e.path)) or 'data'}: {e.message}" for e in errors[:3])
