"""Typed enqueues as mypy and pyright see them (checked by tests/test_typed_enqueues.py,
and by the project's mypy run): the calls in ``accepted`` type-check; each call in
``rejected`` is an error, which its ``# type: ignore`` comment expects. An ignore that
is not needed is an error itself (mypy's warn_unused_ignores, pyright's
reportUnnecessaryTypeIgnoreComment), so a rejected call that is accepted fails.

Never imported at run time.
"""

# pyright: reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

from pyresque import Job, Resque, job
from pyresque.client.async_resque import AsyncResque
from pyresque.jobs.typed import with_options


@job(name="TypedArchive", queue="archive")
def archive(repo_id: int, branch: str = "main") -> str:
    return f"{repo_id}:{branch}"


class TypedMail(Job, register=False):
    queue = "mail"

    def perform(self, to: str, count: int) -> None:
        pass


def accepted(resque: Resque) -> None:
    job_id: str | None = archive.enqueue(resque, 44, "masterbrew")
    archive.enqueue(resque, 44)
    archive.enqueue(resque, repo_id=44, branch="masterbrew")
    archive.enqueue_to(resque, "slow", 44)
    archive.enqueue(with_options(resque, track_status=True, at_front=True), 44)
    job_id = TypedMail.enqueue(resque, "a@example.com", 3)
    TypedMail.enqueue_to(resque, "urgent", to="a@example.com", count=1)
    result: str = archive(44, "masterbrew")  # calling the function still calls it
    print(job_id, result)


async def accepted_async(resque: AsyncResque) -> None:
    job_id: str | None = await archive.enqueue(resque, 44)
    job_id = await TypedMail.enqueue(resque, "a@example.com", 3)
    print(job_id)


def rejected(resque: Resque) -> None:
    archive.enqueue(resque, "44")  # type: ignore[arg-type]
    archive.enqueue(resque)  # type: ignore[call-arg]
    archive.enqueue(resque, 44, branch=7)  # type: ignore[arg-type]
    archive.enqueue(resque, 44, colour="red")  # type: ignore[call-arg]
    archive.enqueue(resque, 44, "masterbrew", "extra")  # type: ignore[call-arg]
    archive.enqueue_to(resque, 44, 45)  # type: ignore[arg-type]
    archive.enqueue("not a producer", 44)  # type: ignore[arg-type]
    TypedMail.enqueue(resque, "a@example.com", "3")  # type: ignore[arg-type]
    TypedMail.enqueue(resque, "a@example.com")  # type: ignore[call-arg]
    TypedMail.enqueue_to(resque, "urgent", to="a@example.com", cnt=1)  # type: ignore[call-arg]
    count: int = archive.enqueue(resque, 44)  # type: ignore[assignment]
    print(count)
