"""Showing whatever is in Redis over HTTP: the dashboard's last defences.

The admin layer reads what it can and notes the rest (``client.admin.base``). Before
a page or an API answer is produced, ``clip`` shortens huge strings to a prefix and
their size and turns what JSON cannot carry (NaN, infinities) into ``None``; request
parameters are read strictly (``integer``).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.convertors import Convertor, register_url_convertor

from pyresque.client.admin.base import shorten

#: Largest integer a parameter may take (beyond any list Redis can hold).
INT_LIMIT = 2**53


def clip(value: Any) -> Any:
    """A copy of page data fit to show: strings shortened, non-finite numbers as None,
    text that cannot be written as UTF-8 (lone surrogates) escaped."""
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return shorten(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clip(k) if isinstance(k, str) else k: clip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clip(v) for v in value]
    return value


class BadParameter(ValueError):
    """A request parameter that is not what the endpoint takes; the message says why."""


def integer(raw: str, name: str, default: int = 0) -> int:
    """A non-negative integer parameter: negative ones count as 0, huge ones as
    ``INT_LIMIT``; anything else raises ``BadParameter`` saying what was expected."""
    text = raw.strip()
    if not text:
        return default
    digits = text.lstrip("+-")
    if not digits.isdigit() or not digits.isascii() or len(text) - len(digits) > 1:
        raise BadParameter(f"{name} must be a whole number, got {shorten(text, 40)!r}")
    if text.startswith("-"):
        return 0
    return INT_LIMIT if len(digits) > 16 else min(int(digits), INT_LIMIT)


class AnyText(Convertor[str]):
    """A path parameter that is any text: Starlette's ``path`` (``.*``) stops at a
    newline, so a job id or queue name holding one got a 404 instead of its page."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("anytext", AnyText())
