"""A producer of pickup.py (``--own-producers``) in a process of its own, run with one
tree's ``src`` on its path, so that each tree's jobs are enqueued by that tree's code.

    python pickup_producer.py <redis url> <namespace>      # Resque.enqueue of PickupStamp
    python pickup_producer.py <redis url> --floor <key>    # the floor's bare LPUSH

For each line read on stdin it takes the time, pushes one job and writes that time
back (``repr`` of ``time.time()``), as pickup.py's own samples take it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial

import floors


def pusher(url: str, target: list[str]) -> Callable[[], object]:
    if target[0] == "--floor":
        client = floors._client(url)
        return partial(client.lpush, target[1], floors.PAYLOAD)
    from pyresque import Resque

    return partial(Resque(url, namespace=target[0]).enqueue, "q", "PickupStamp", {})


def main() -> None:
    push = pusher(sys.argv[1], sys.argv[2:])
    for _ in sys.stdin:
        enqueued = time.time()
        push()
        sys.stdout.write(f"{enqueued!r}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
