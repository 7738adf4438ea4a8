"""Enqueue-now and delete on the Delayed page: each addresses one item by its due time
and content digest, through the admin layer, and needs the CSRF token."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.testclient import TestClient

from pyresque import Job, Resque
from pyresque.client.admin.items import digest
from pyresque.web.app import create_app
from test_web_support import LOCAL, client, rq

__all__ = ["client", "rq"]


class WebRemind(Job, name="Remind"):
    def perform(self) -> None:
        pass


def act(client: TestClient, action: str, **fields: Any) -> Any:
    token = client.get("/api/csrf").json()["csrf_token"]
    return client.post(f"/api/actions/{action}", json=fields, headers={"X-CSRF-Token": token})


def test_enqueue_now_and_delete_one_item(client: TestClient, rq: Resque) -> None:
    at = int(time.time()) + 3600
    first = rq.enqueue_at(at, "mail", WebRemind, {"user": 1})
    rq.enqueue_at(at, "mail", WebRemind, {"user": 2})
    ruby = json.dumps({"class": "Remind", "args": [{"user": 3}], "queue": "mail"})
    rq.redis.rpush(rq.keys.delayed(at), ruby)  # resque-scheduler's shape: no id
    jobs = client.get("/api/delayed").json()["timestamps"][0]["jobs"]
    assert [j["args"][0]["user"] for j in jobs] == [1, 2, 3]

    answer = act(client, "enqueue-delayed", at=at, digest=jobs[0]["digest"])
    assert answer.json() == {"ok": True, "action": "enqueue-delayed", "count": 1}
    assert [j["id"] for j in rq.peek("mail", 0, 5)] == [first]
    answer = act(client, "remove-delayed", at=at, digest=digest(ruby.encode()))
    assert answer.json()["count"] == 1
    left = client.get("/api/delayed").json()["timestamps"][0]["jobs"]
    assert [j["args"][0]["user"] for j in left] == [2]
    assert rq.size("mail") == 1

    # The same item again: it is gone, nothing is done (409); a bad field is 400.
    again = act(client, "remove-delayed", at=at, digest=jobs[0]["digest"])
    assert again.status_code == 409
    assert act(client, "remove-delayed", at="soon", digest="x").status_code == 400
    assert act(client, "enqueue-delayed", at=at).status_code == 400
    assert rq.redis.llen(rq.keys.delayed(at)) == 1


def test_the_last_item_of_a_due_time_leaves_the_schedule(client: TestClient, rq: Resque) -> None:
    at = int(time.time()) + 60
    rq.enqueue_at(at, "mail", WebRemind, {"user": 1})
    (job,) = client.get("/api/delayed").json()["timestamps"][0]["jobs"]
    assert act(client, "remove-delayed", at=at, digest=job["digest"]).json()["count"] == 1
    assert rq.redis.zcard(rq.keys.delayed_schedule) == 0
    assert client.get("/api/delayed").json()["timestamps"] == []


def test_the_page_has_a_form_per_item_and_none_read_only(
    redis_url: str, client: TestClient, rq: Resque
) -> None:
    at = int(time.time()) + 60
    rq.enqueue_at(at, "mail", WebRemind, {"user": 1})
    page = client.get("/delayed").text
    assert page.count('data-action="enqueue-delayed"') == 1
    assert page.count('data-action="remove-delayed"') == 1
    assert f'name="at" value="{at}"' in page
    app = create_app(redis_url, namespace=rq.namespace, read_only=True)
    with TestClient(app, LOCAL) as read_only:
        assert "enqueue-delayed" not in read_only.get("/delayed").text
    # Without the CSRF token nothing happens.
    (job,) = client.get("/api/delayed").json()["timestamps"][0]["jobs"]
    refused = client.post("/api/actions/remove-delayed", json={"at": at, "digest": job["digest"]})
    assert refused.status_code == 403
    assert rq.redis.llen(rq.keys.delayed(at)) == 1
