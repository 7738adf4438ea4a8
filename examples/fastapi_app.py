"""A FastAPI app that enqueues a job per request and mounts the dashboard.

    pip install 'pyresque[fastapi]'
    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.fastapi_app:app
    QUEUE=mail pyresque worker --app examples/fastapi_app.py       # runs the jobs

The dashboard is at /resque for requests that carry the admin cookie (a stand-in
for your own session check).
"""

from __future__ import annotations

import hmac
import os

from fastapi import FastAPI, Request

from pyresque import Job
from pyresque.contrib.fastapi import ResqueDep, lifespan, mount_dashboard

ADMIN_COOKIE = "admin"


class SendWelcome(Job):
    """Send a welcome mail (here: return the line it would send)."""

    def perform(self, email: str) -> str:
        return f"Welcome, {email}!"


def is_admin(request: Request) -> bool:
    """Your own check: a session, a role. Here: a cookie holding the admin secret."""
    secret = os.environ.get("ADMIN_SECRET", "")
    given = request.cookies.get(ADMIN_COOKIE, "")
    return bool(secret) and hmac.compare_digest(given, secret)


def create_app(redis_url: str | None = None, namespace: str = "resque") -> FastAPI:
    app = FastAPI(lifespan=lifespan(redis_url, namespace))

    @app.post("/signup")
    async def signup(email: str, resque: ResqueDep) -> dict[str, str | None]:
        job_id = await resque.enqueue_to("mail", SendWelcome, email, track_status=True)
        return {"job": job_id}

    @app.get("/jobs/{job_id}")
    async def job(job_id: str, resque: ResqueDep) -> dict[str, object]:
        status = await resque.job_status(job_id)
        if status is None:
            return {"status": None}
        return {"status": status.status.name, "result": status.result}

    mount_dashboard(app, "/resque", redis_url, namespace, auth=is_admin)
    return app


# The namespace from PREFIX, the variable the worker reads it from (default "resque").
app = create_app(namespace=os.environ.get("PREFIX", "resque"))
