"""Retry counts that survive a Ruby or PHP scheduler.

A retried job waits for its next attempt in resque-scheduler's delayed queue,
its payload carrying ``attempts`` and ``errors``. resque-scheduler (Ruby) and
php-resque's scheduler move a due item by enqueueing its ``class`` and ``args``
afresh and drop everything else, so a retry limit would never be reached. So
when a retry is scheduled, its state is also kept under a key named after what
every scheduler keeps, the class and the arguments (as resque-retry does):
``<ns>:pyresque:retry:<sha1>``. When an attempt fails, the worker goes on from
whichever count is further along, the payload's or that key's. The key is
deleted when the job ends, and otherwise expires a day after the attempt was
due (a job moved by a foreign scheduler that then succeeds leaves it until
then). Jobs with equal class and arguments share the count, as in resque-retry.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import redis

from pyresque.protocol import strict_json
from pyresque.protocol.keys import Keys
from pyresque.protocol.payload import Payload, dumps

log = logging.getLogger("pyresque.worker")

#: The payload fields a foreign scheduler drops that decide the next retry.
CARRIED = ("attempts", "crashes", "errors", "retry")
#: Seconds the state outlives the attempt's due time.
GRACE = 86400


def _same_for_php(value: Any) -> Any:
    """The arguments as php-resque writes them back: it cannot tell ``{}`` from ``[]``."""
    if isinstance(value, dict):
        return {k: _same_for_php(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [_same_for_php(v) for v in value]
    return value


class RetryState:
    """The retry state of the jobs of one namespace, keyed by class and arguments."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def key(self, payload: Payload) -> str:
        import hashlib  # here: loading OpenSSL would grow every job child (zygote.py)

        shape = [payload.class_name, _same_for_php(payload.args)]
        canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
        return self._keys.retry_state(hashlib.sha1(canonical.encode()).hexdigest())

    def save(self, retried: Payload, due: float, now: float) -> None:
        """Keep the state of ``retried``, the payload of an attempt due at ``due``."""
        state = {k: retried.extra[k] for k in CARRIED if k in retried.extra}
        ttl_ms = int((max(0.0, due - now) + GRACE) * 1000)
        self._redis.set(self.key(retried), dumps(state), px=ttl_ms)

    def restore(self, payload: Payload) -> None:
        """After a failed attempt: adopt the kept state when it is further along."""
        data = cast("bytes | None", self._redis.get(self.key(payload)))
        if data is None:
            return
        try:
            state = strict_json.loads(data)
            attempts = state["attempts"]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("job %s: unreadable retry state ignored (%s)", payload.class_name, exc)
            return
        if isinstance(attempts, int) and attempts > payload.attempts:
            payload.extra.update({k: state[k] for k in CARRIED if k in state})

    def forget(self, payload: Payload) -> None:
        """The job ended: its state, if it was ever retried, is not needed any more."""
        if "attempts" in payload.extra:
            self._redis.delete(self.key(payload))
