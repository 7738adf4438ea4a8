"""A claimed job: what the claim script returned for one job a worker now owns.

Here, below the worker, because the middleware that run around a claimed job
(middleware/) see it too and must not import the worker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """A job this worker now owns: the token names its in-flight record."""

    token: str
    queue: str
    raw: bytes
