"""Where a namespace's data is on Redis Cluster, for readers that do not know a queue.

On Cluster (keys.py) what a job of a queue records (Resque's stats, its failure, its
status and result) is in that queue's slot, and the namespace-wide keys in the home
slot. A reader of the whole namespace reads every slot (``places``: one per queue
named in the ``queues`` set), and a reader of one job by its id finds its slot
(``job_slot``): both cost a command per queue, made in one pipeline. On a single
Redis both are the namespace's keys and cost nothing.
"""

from __future__ import annotations

import redis

from pyresque.protocol.connection import raw
from pyresque.protocol.keys import Keys


def places(client: redis.Redis, keys: Keys) -> list[Keys]:
    """The keys of every slot with namespace data: ``[keys]`` on a single Redis; on
    Cluster the home slot's, then each slot of the queues named in the ``queues`` set,
    in the order of the names."""
    if not keys.clustered:
        return [keys]
    found = {raw(m) for m in client.sscan_iter(keys.home.queues, count=1000)}
    return keys.places(sorted(text for text in map(_text, found) if text is not None))


def _text(name: bytes) -> str | None:
    """A queue name as text; None for bytes that are not UTF-8: no pyresque producer
    writes such a name, and no key of its slot could be named as text."""
    try:
        return name.decode()
    except UnicodeDecodeError:
        return None


def job_slot(client: redis.Redis, keys: Keys, job_id: str, prefix: str = "") -> Keys | None:
    """The keys of the slot holding job ``job_id``'s status or result: ``keys`` on a
    single Redis; on Cluster the first slot (``places``) where either key exists, None
    when none has them (the job is untracked and has no result yet, or they expired)."""
    if not keys.clustered:
        return keys
    slots = places(client, keys)
    pipe = client.pipeline(transaction=False)
    for at in slots:
        pipe.exists(at.status(job_id, prefix), at.result(job_id))
    return next((at for at, n in zip(slots, pipe.execute(), strict=True) if n), None)


def name_queues(client: redis.Redis, keys: Keys, names: list[str | bytes]) -> None:
    """Name queues in the home slot's ``queues`` set (Cluster: a push names its queue
    in the queue's own slot only); a name new there leaves a token on the home slot's
    ``queues_changed``, so an idle worker serving globs expands them at once."""
    if (
        names
        and client.sadd(keys.home.queues, *names)
        and not client.llen(keys.home.queues_changed)
    ):
        client.rpush(keys.home.queues_changed, "1")
