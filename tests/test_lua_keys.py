"""Every Lua script checks the number of KEYS its ARGV asks for (lib_keys.lua).

Each script is called with a right ARGV and one key too few or too many: it must
fail naming itself, before it writes anything.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import redis

from pyresque.protocol import scripts

P = '{"class":"X","args":[]}'
FINISH = ["tok", "ok", "null", "", "0", "", "delayed:0", "", "", "", 0, "", "", "", "", ""]
FAILED = ["tok", "failed", "null", "rec", "0", "", "delayed:0", "", "", "", 0, "", "", "", "", ""]
#: finish with worker:<id>, a status key, a next attempt, a unique lock and two slots
FINISH_ALL = [
    *("tok", "retry", "null", "", "1", "5", "delayed:5", "it", "lock", "m", 2, "1", "", ""),
    *("", ""),
]
#: finish storing a result (the result key and its ready list)
RESULT = ["tok", "ok", "null", "", "0", "", "delayed:0", "", "", "", 0, "", 60, "{}", "", ""]
#: a workflow job's last finish, with one queue that waiting jobs go to (8 + 2 keys)
FLOW = ["tok", "ok", "null", "", "0", "", "delayed:0", "", "", "", 0, "", "", "", "id", 1]
#: on Redis Cluster: the finish records a workflow job's end in one reports hash
REPORT = ["tok", "ok", "null", "", "0", "", "delayed:0", "", "", "", 0, "", "", "", "id", "report"]
#: wf_enqueue.lua: one job without dependencies, on one queue
WF_SPEC = (
    '{"queues":["q"],"status":"","batches":[],"jobs":[{"id":"a","q":"q","p":2,'
    '"front":false,"fail":"cancel","deps":[],"b":[],"st":false}]}'
)
#: ... on Redis Cluster: no queue's keys (they are in other slots)
WF_SHARDED = (
    '{"sharded":true,"queues":[],"batches":[],"jobs":[{"id":"a","q":"q","p":2,'
    '"front":false,"fail":"cancel","deps":[],"b":[],"st":true}]}'
)
#: ... and a dependable delayed job there: its schedule's keys are in its queue's slot too
#: ... given a dependency's stored result (its record, ARGV[3]) that the caller read in its slot
WF_SHARDED_RES = WF_SHARDED.replace('"deps":[]', '"p2":2,"deps":["d"]').replace(
    '"jobs"', '"res":{"d":3},"jobs"'
)
WF_SHARDED_AT = WF_SHARDED.replace('"st":true}', '"st":false,"at":5,"item":2,"expires":9}')
CLAIM = ["w", "tok", "", "q1", "q2"]
#: a woken worker's claim: a wake list per queue too
WOKEN = ["w", "tok", "1", "q1", "q2"]

#: script -> calls as (the right number of keys, ARGV)
CASES: dict[str, list[tuple[int, list[Any]]]] = {
    "claim": [(4, CLAIM), (6, WOKEN)],
    "finish": [
        *((3, FINISH), (6, FAILED), (11, FINISH_ALL), (5, RESULT), (3 + 10, FLOW)),
        (3 + 1, REPORT),
    ],
    "finish_claim": [(3 + 4, [3, *FINISH, *CLAIM]), (11 + 6, [11, *FINISH_ALL, *WOKEN])],
    "mark_running": [
        (2, ["tok", "{}", ""]),
        (3, ["tok", "{}", "1"]),
        (2, ["tok", "{}", "", "1", P]),
    ],
    "heartbeat": [(5, [""]), (5 + 1, ["1"])],
    "lease_renew": [(1, ["w", 1000])],
    "foreign_clear": [(2, ["list", "set"])],
    "history": [(3, ["2", 1, 1, 60, 60, "i", "field", 1])],
    "recover": [
        (7, ["w", "tok", "rec", P, "requeue", "q", "0", "", ""]),
        (9, ["w", "tok", "rec", P, "requeue", "q", "0", "lock", "1"]),
        (10, ["w", "tok", "rec", P, "fail", "q", "0", "lock", "1", "", "id"]),
        (9, ["w", "tok", "rec", P, "fail", "q", "0", "", "1", "", "id", "report"]),
    ],
    "reap": [(12, ["w", "1", "", ""]), (12 + 2, ["w", "0", "", "", 2])],
    "land_claim": [(4, ["", "", "q1", "q2"]), (6 + 1, ["1", "1", "q1", "q2", "q1", "q2"])],
    "adopt": [(2, ["tok", "q", P])],
    "peer_fence": [(2, [1000, "pyresque"])],
    "failed_swap": [(3, [1, "a", 10])],
    "failed_remove_at": [(1, [0, "a", "mark"])],
    "failed_trim": [(1, [1, "a"])],
    "lengths": [(2, ["LLEN", 2])],
    "heads": [(2, [2])],
    "queues_forget": [(6, ["sweep", 0, 0, 2, "a", "b", "", "1"])],
    "retry_failed": [
        (5, [0, "a", "b", P, "q", "", ""]),
        (6, [0, "a", "b", P, "q", "packet", ""]),
        (10, [0, "a", "b", P, "q", "packet", "id"]),
    ],
    "wf_enqueue": [
        (10, [WF_SPEC, P]),
        (8, [WF_SHARDED, P]),
        (8, [WF_SHARDED_AT, P]),
        (8, [WF_SHARDED_RES, P, P]),
    ],
    "wf_settle": [
        (8, ["id", 0, "waiting", "cancelled"]),
        (10, ["id", 1, "queued", "failed"]),
        (8, ["id", -1, "queued", "failed"]),
    ],
    "wf_report": [(8, ["id", "ok", "null"])],
    "wf_retry": [(8, ["id"])],
    "wf_push": [(5, ["id", "q", "tail", P]), (5, ["id", 5, "at", P, 9])],
    "enqueue": [(4, ["q", "", "tail", P, P]), (6, ["q", "packet", "tail", P, P])],
    "enqueue_unique": [
        (5, ["tok", 1000, "q", "tail", P, ""]),
        (6, ["tok", 1000, "q", "tail", P, "packet"]),
    ],
    "unlock": [(1, ["tok"])],
    "remove_jobs": [(2, ["a", "", "", "b", "tok", ""]), (4, ["a", "", "1", "b", "tok", "1"])],
    "queue_detach": [(4, ["q", 60])],
    "queue_drain": [(3, [2, "tok", "", "", "1"])],
    "schedule": [
        (3, [1, "delayed:1", "it", "", 0, ""]),
        (5, [1, "delayed:1", "it", "tok", 1000, "packet"]),
        (6, [1, "delayed:1", "it", "tok", 1000, "packet", 86401]),
    ],
    "delayed_take": [
        (
            4 + 3 + 3 + 2,
            [
                *("1", "delayed:1"),
                *("a", "tail", "q", P, ""),
                *("b", "failed", "q", "rec", "tok"),
                *("c", "drop", "q", "", "tok"),
            ],
        )
    ],
    "delayed_unschedule": [(3, ["1", "rec"])],
    "delayed_note": [(2, ["q", 1])],
    "delayed_due": [(2, [1, 10])],
    "delayed_settle": [(2, ["q", "", ""])],
    "cron_leader": [(1, ["id", 1000])],
    "cron_fire": [
        (8, ["id", "s", 1, P, "q", "{}", "{}", ""]),
        (9, ["id", "s", 1, P, "q", "{}", "{}", "packet"]),
    ],
    "limit_acquire": [(3, ["m", "tok", "concurrency", 1, 0, "rate", 5, 1000])],
    "limit_park": [(10, ["tok", 1, "it", P, "q", "key"])],
    "limit_wake": [(8, [1, "it", P, "q", "key"])],
    "limit_defer": [(4, ["tok", "it", "m", 10])],
    "limit_rate_wake": [(5 + 4, [1, 1000, "m", "a", P, "q", "b", P, "q"])],
    "limit_delay": [(5, ["tok", 1, "delayed:1", "it"])],
}


def test_every_script_has_a_case() -> None:
    lua = resources.files("pyresque.protocol") / "lua"
    names = {p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua")}
    assert set(CASES) == {n for n in names if not n.startswith("lib_")}


def _keys(namespace: str, n: int) -> list[str]:
    return [f"{namespace}:k{i}" for i in range(n)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_wrong_number_of_keys_is_an_error_naming_the_script_and_writes_nothing(
    name: str, redis_client: redis.Redis, namespace: str
) -> None:
    for count, args in CASES[name]:
        for wrong in (count - 1, count + 1):
            message = f"pyresque {name}.lua expects "
            with pytest.raises(redis.exceptions.ResponseError, match=message):
                scripts.run(redis_client, name, _keys(namespace, wrong), args)
            assert list(redis_client.scan_iter(match=f"{namespace}:*")) == [], (name, wrong)
        scripts.run(redis_client, name, _keys(namespace, count), args)  # the right count runs
        for key in redis_client.scan_iter(match=f"{namespace}:*"):
            redis_client.delete(key)


def test_a_pipelined_call_with_a_wrong_count_fails_too(
    redis_client: redis.Redis, namespace: str
) -> None:
    pipe = redis_client.pipeline(transaction=False)
    scripts.run(pipe, "enqueue", _keys(namespace, 5), ["q", "", "tail", P])
    with pytest.raises(redis.exceptions.ResponseError, match=r"enqueue\.lua expects 4 KEYS"):
        pipe.execute()
    assert list(redis_client.scan_iter(match=f"{namespace}:*")) == []
