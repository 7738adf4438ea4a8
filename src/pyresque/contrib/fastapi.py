"""pyresque for FastAPI (``pip install 'pyresque[fastapi]'``): Starlette's integration
(contrib/starlette.py) and a dependency for handlers.

    app = FastAPI(lifespan=lifespan())
    @app.post("/signup")
    async def signup(resque: ResqueDep) -> dict[str, str | None]:
        return {"job": await resque.enqueue("mail", Welcome, {"user": 7})}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from pyresque.client.async_resque import AsyncResque
from pyresque.contrib.starlette import STATE_KEY, get_resque, lifespan, mount_dashboard, producer

__all__ = ["STATE_KEY", "ResqueDep", "get_resque", "lifespan", "mount_dashboard", "producer"]

#: A handler's parameter annotated with this receives the app's ``AsyncResque``.
ResqueDep = Annotated[AsyncResque, Depends(get_resque)]
