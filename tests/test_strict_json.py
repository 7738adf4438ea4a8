"""strict_json's decoding: a text that is one JSON value with nothing around it goes to
the C scanner directly (an idle worker's pickup runs that code cold); every text is
accepted or refused exactly as ``JSONDecoder.decode`` under the policy would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyresque.protocol import strict_json
from pyresque.protocol.payload import Payload

SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])
JUNK = st.sampled_from(["", "", "x", "]", "}", ",1", "{}", " 1", "\x00", "/"])
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
LITERALS = st.sampled_from(["1e400", "-1e999", "NaN", "Infinity", "1" * 5000, "[1,", '"\\ud800"'])


def _outcome(decode: Any, text: str) -> tuple[str, Any]:
    """What ``decode(text)`` returns, or the type and message of what it raises."""
    try:
        return "value", decode(text)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@given(
    before=SPACE,
    value=VALUES | LITERALS,
    after=SPACE,
    junk=JUNK,
    raw=st.booleans(),
)
def test_every_text_is_decoded_as_the_whole_decoder_decodes_it(
    before: str, value: Any, after: str, junk: str, raw: bool
) -> None:
    body = value if raw and isinstance(value, str) else json.dumps(value)
    text = before + body + after + junk
    assert _outcome(strict_json._decode, text) == _outcome(strict_json._DECODER.decode, text)


@given(st.text(max_size=60))
def test_any_text_is_decoded_as_the_whole_decoder_decodes_it(text: str) -> None:
    assert _outcome(strict_json._decode, text) == _outcome(strict_json._DECODER.decode, text)


def test_a_payload_as_producers_write_it_skips_the_decoders_python_layers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    whole = json.JSONDecoder.decode

    def counted(self: json.JSONDecoder, text: str, *args: Any) -> Any:
        calls.append(text)
        return whole(self, text, *args)

    monkeypatch.setattr(json.JSONDecoder, "decode", counted)
    written = Payload.build("Mail", [{"to": "a@example.com", "n": 1.5}]).encode()
    assert Payload.decode(written.encode()).args == [{"to": "a@example.com", "n": 1.5}]
    assert calls == []
    with pytest.raises(strict_json.BadJSON, match="Extra data"):
        strict_json.loads(written + "x")  # not one value alone: the whole way, and its error
    assert calls == [written + "x"]
