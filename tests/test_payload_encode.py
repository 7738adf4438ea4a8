"""``Payload.encode`` writes the usual shape itself (payload.py): the same text as
``dumps(to_dict())`` for every payload, and the same error where that raises."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyresque.protocol.payload import Payload, dumps

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
_times = st.none() | st.floats() | st.integers() | st.just(1765100000.1234565)


@given(
    st.text(),
    st.lists(_values, max_size=3),
    st.none() | st.text(),
    st.text() | st.none(),
    _times,
    st.dictionaries(st.text(), _values, max_size=2),
)
@example("Echo", [{}], "a" * 32, "", 1765100000.123456, {})
@example('é/\u2028"\\', ["\ud800"], "x", "p", math.inf, {})
@example("Echo", [math.nan], "x", "", 1.5, {})
def test_encode_writes_what_dumps_of_to_dict_writes(
    name: str, args: list[Any], job_id: str | None, prefix: Any, at: Any, extra: dict[str, Any]
) -> None:
    payload = Payload(name, args, job_id, prefix, at, extra)
    try:
        expected = dumps(payload.to_dict())
    except TypeError as exc:
        expected = str(exc)
        with pytest.raises(TypeError, match=re.escape(expected)):
            payload.encode()
        return
    assert payload.encode() == expected
    json.loads(expected)  # JSON indeed


def test_a_built_payload_is_written_in_the_producers_order() -> None:
    payload = Payload.build("Echo", [{"a": "/é"}], job_id="0" * 32)
    assert payload.encode().startswith('{"class":"Echo","args":[{"a":"/é"}],"id":"0000')
    assert list(json.loads(payload.encode())) == ["class", "args", "id", "prefix", "queue_time"]
