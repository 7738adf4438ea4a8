"""Text from Redis on a terminal or in a log: the characters a terminal acts on, escaped.

Queue, class and worker names, arguments and error messages come from any
producer. Printed raw, an ANSI escape sequence could clear a screen, retitle a
window or hide text, and a bidi override could reorder a line. ``escape`` turns
every unprintable character (controls, format characters such as bidi
overrides, lone surrogates, unassigned code points) into a ``\\x1b``-style escape.
"""

from __future__ import annotations

import logging


def escape(text: str, keep: str = "") -> str:
    """``text`` with each unprintable character, except those in ``keep``, escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    if char in "\n\t\r":
        return repr(char)[1:-1]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class EscapingFormatter(logging.Formatter):
    """Log lines with unprintable characters escaped (a traceback keeps its line breaks)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record), keep="\n")
