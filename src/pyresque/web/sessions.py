"""Dashboard sign-in sessions and failed-login throttling, kept in Redis so that every
process serving the dashboard agrees and a restart forgets nothing.

A session is a random id in an HttpOnly cookie; Redis holds only its hash, with when it
was made, the "sign out everywhere" epoch and a fingerprint of the token it was made
with. It ends after ``idle`` seconds unused, ``absolute`` seconds after sign-in, on
sign-out, when someone signs out everywhere, or when the token changes.

Failed sign-ins (a wrong token in the form, a wrong bearer token or basic password) are
counted per client address; past ``FREE_FAILURES`` in ``FAILURE_WINDOW``, that address
must wait, twice as long after each further failure (up to ``MAX_LOCKOUT``), and is
refused meanwhile whatever it sends, so guessing gets nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import cast

import redis

from pyresque.protocol.keys import Keys

#: A session unused this long (seconds) ends.
IDLE_SECONDS = 30 * 60
#: A session ends this long (seconds) after sign-in, used or not.
ABSOLUTE_SECONDS = 12 * 3600
#: Failed sign-ins from one address allowed before it has to wait.
FREE_FAILURES = 5
#: Failures are counted over this many seconds since the last one.
FAILURE_WINDOW = 15 * 60
#: The longest wait (seconds) imposed after repeated failures.
MAX_LOCKOUT = 15 * 60


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: bytes | None) -> str:
    """A value of ours as text ("0" for none); anything else never equals what we wrote."""
    return "0" if value is None else value.decode("ascii", "replace")


class Sessions:
    """Sign-in sessions of one namespace's dashboard, for one access token."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        token: str,
        idle: float = IDLE_SECONDS,
        absolute: float = ABSOLUTE_SECONDS,
    ) -> None:
        self.redis, self.keys = client, keys
        self.idle, self.absolute = idle, absolute
        # Sessions made with another token (before it was changed) are void.
        self.fingerprint = hmac.new(token.encode(), b"pyresque-session", "sha256").hexdigest()[:16]

    def create(self) -> str:
        """A new session; returns its id, for the cookie."""
        session = secrets.token_urlsafe(32)
        try:
            epoch = _text(cast("bytes | None", self.redis.get(self.keys.web_epoch)))
        except redis.exceptions.ResponseError:  # a key of another type: not ours, replaced
            epoch = self.revoke_all()
        record = f"{time.time():.0f} {epoch} {self.fingerprint}"
        self.redis.set(self.keys.web_session(_digest(session)), record, ex=int(self.idle))
        return session

    def check(self, session: str) -> bool:
        """Whether ``session`` is valid; if so, its idle time starts again."""
        key = self.keys.web_session(_digest(session))
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.get(self.keys.web_epoch)
        record, epoch = pipe.execute(raise_on_error=False)
        if isinstance(record, Exception) or isinstance(epoch, Exception):
            return False
        issued, _, rest = _text(record).partition(" ")
        made_in, _, fingerprint = rest.partition(" ")
        valid = (
            issued.isdigit()
            and time.time() - int(issued) < self.absolute
            and made_in == _text(epoch)
            and hmac.compare_digest(fingerprint, self.fingerprint)
        )
        if valid:
            self.redis.expire(key, int(self.idle))
        return valid

    def revoke(self, session: str) -> None:
        """End one session (signing out)."""
        self.redis.delete(self.keys.web_session(_digest(session)))

    def revoke_all(self) -> str:
        """End every session of this namespace's dashboard (sign out everywhere);
        returns the new epoch."""
        epoch = secrets.token_hex(8)
        self.redis.set(self.keys.web_epoch, epoch)
        return epoch


class Throttle:
    """Failed sign-ins per client address, and the waits they impose."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def wait(self, address: str) -> int:
        """Seconds ``address`` must still wait before it may try again (0: none)."""
        left = int(self.redis.pttl(self.keys.web_lockout(address)))
        return -(-left // 1000) if left > 0 else 0

    def failed(self, address: str) -> int:
        """Count a failure; returns the seconds ``address`` now has to wait (0: none)."""
        key = self.keys.web_failures(address)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, FAILURE_WINDOW)
        try:
            count = int(pipe.execute()[0])
        except redis.exceptions.ResponseError:  # not a counter: not ours, replaced
            self.redis.set(key, 1, ex=FAILURE_WINDOW)
            count = 1
        if count <= FREE_FAILURES:
            return 0
        seconds = min(MAX_LOCKOUT, 1 << min(count - FREE_FAILURES, 20))
        self.redis.set(self.keys.web_lockout(address), count, ex=seconds)
        return seconds

    def succeeded(self, address: str) -> None:
        """A correct sign-in: the address starts afresh."""
        self.redis.delete(self.keys.web_failures(address))
