"""The job model: ``Job`` classes, function jobs, and the registry that maps Resque names to them.

A payload names its job by a string (``"UserJob"``, ``"My_Job"``, ``"App\\Jobs\\Mail"``).
Workers run only classes the application registered: a payload can never make
us import a module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from pyresque.exceptions import UnknownJob
from pyresque.jobs.limits import Limit
from pyresque.jobs.retry import RetryPolicy
from pyresque.jobs.typed import Performs, Producer, positional
from pyresque.jobs.unique import Unique
from pyresque.protocol.payload import Payload
from pyresque.protocol.progress import checkpoint_json, progress_json

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Job:
    """Base class for jobs. Subclasses register themselves under their class name.

    ``class Mail(Job, name="App\\\\Mail")`` registers under another name (for a job
    enqueued by PHP or Ruby); ``class Base(Job, register=False)`` registers nothing.

    ``perform`` may take no parameters and read ``self.args`` (php-resque's view:
    the data given to ``enqueue``), or take positional parameters, which receive
    the payload's ``args`` list (Ruby's view).
    """

    #: The name this class is registered and enqueued under.
    resque_name: ClassVar[str]
    #: Default queue for ``Resque.enqueue_job``.
    queue: ClassVar[str | None] = None
    #: Seconds the job may run before it is stopped and failed with ``JobTimeout``.
    timeout: ClassVar[float | None] = None
    #: What a crash of the worker running this job does: "requeue" it, or "fail" it
    #: as Resque does.
    on_crash: ClassVar[str] = "requeue"
    #: How a failure is retried (retry.py); None: it goes to ``failed`` at once, as in Resque.
    retry: ClassVar[RetryPolicy | None] = None
    #: At most one job of this class with the same arguments at a time (unique.py).
    unique: ClassVar[Unique | None] = None
    #: Concurrency caps and rate limits shared by every worker (limits.py).
    limits: ClassVar[tuple[Limit, ...]] = ()
    #: Store the return value (or the final failure) for ``JobHandle.result``; a
    #: ``result_ttl`` (seconds) implies it. Kept one day by default (protocol/results.py).
    store_result: ClassVar[bool] = False
    result_ttl: ClassVar[int | None] = None
    #: Read the job's last checkpoint (``self.checkpoint``) into ``self.checkpointed``
    #: before each run: one GET per job of this class, none for other classes.
    resumable: ClassVar[bool] = False

    def __init_subclass__(
        cls, *, name: str | None = None, register: bool = True, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.resque_name = name or cls.__name__
        if register:
            registry.register(cls)

    def __init__(self, payload: Payload, queue: str) -> None:
        self.payload = payload
        self.queue_name = queue
        #: The payload's positional argument list (Ruby's view).
        self.arguments: list[Any] = payload.args
        #: php-resque's ``$this->args``: the first argument (the data given to enqueue).
        self.args: Any = payload.data
        self.job_id: str | None = payload.id
        #: The state of the last ``checkpoint`` of an earlier run (``resumable`` jobs), or None.
        self.checkpointed: Any = None
        #: Set (in the worker) when ``Resque.cancel`` asked to stop this job.
        self.cancel_requested = False
        # Where ``progress`` and ``checkpoint`` go (set where the job runs): a kind and
        # the report's JSON. None: nobody listens (a job run outside a worker).
        self.reporter: Callable[[str, str], None] | None = None
        #: The payload's bytes as the worker claimed them, while nothing may have changed
        #: the payload since (no ``around_process`` step ran): what a child is sent, not
        #: encoded again (executors/forking.py). None otherwise.
        self.raw_payload: bytes | None = None

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.perform is not defined")

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is, from 0.0 to 1.0, and what it does. Cheap: the
        worker writes the latest report a few times a second at most
        (``JobHandle.progress``, ``pyresque status``, the dashboard)."""
        text = progress_json(fraction, message)
        if self.reporter is not None and self.job_id:
            self.reporter("progress", text)

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` (JSON): a run of this job after a crash, a retry or a TERM
        starts with it in ``checkpointed`` (when the class is ``resumable``). Written
        by the worker within a fraction of a second; deleted when the job ends."""
        text = checkpoint_json(state)
        if self.reporter is not None and self.job_id:
            self.reporter("checkpoint", text)

    def set_up(self) -> None:
        """Runs before ``perform``; may raise ``DontPerform``."""

    def before_perform(self) -> None:
        """Runs after ``set_up``; may raise ``DontPerform``."""

    def tear_down(self) -> None:
        """Runs after ``perform``, whether it succeeded or not."""

    def after_perform(self) -> None:
        """Runs after a successful ``perform``."""

    def on_failure(self, exception: BaseException) -> None:
        """Runs when the job fails (an exception, a dirty exit, a timeout)."""

    @classmethod
    def before_enqueue(cls, queue: str, args: list[Any]) -> bool | None:
        """Return False (or raise ``DontCreate``) to veto the enqueue."""
        return None

    @classmethod
    def after_enqueue(cls, queue: str, args: list[Any], job_id: str | None) -> None:
        """Runs after the job was pushed."""

    @classmethod
    def enqueue(
        cls: type[Performs[P]], producer: Producer[T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Enqueue on the class's ``queue`` with ``perform``'s arguments, type-checked
        (typed.py): ``Mail.enqueue(resque, "a@b.c", 3)``."""
        return _send(cls, producer, _queue_of(cls), args, kwargs)  # type: ignore[arg-type]

    @classmethod
    def enqueue_to(
        cls: type[Performs[P]],
        producer: Producer[T],
        queue: str,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``enqueue`` on ``queue``."""
        return _send(cls, producer, queue, args, kwargs)  # type: ignore[arg-type]

    def run_perform(self) -> Any:
        """Call ``perform`` the way its signature asks for."""
        if _takes_positional(type(self).perform):
            return self.perform(*self.arguments)
        return self.perform()


@functools.cache
def _takes_positional(perform: Callable[..., Any]) -> bool:
    params = list(inspect.signature(perform).parameters.values())[1:]  # drop self
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


def _queue_of(job_class: type[Job]) -> str:
    if not job_class.queue:
        raise ValueError(f"{job_class.resque_name} has no default queue; use enqueue_to")
    return job_class.queue


def _send(
    job_class: type[Job],
    producer: Producer[T],
    queue: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """A typed enqueue (typed.py), the arguments put in their positional places."""
    sent = positional(job_class.perform, args, kwargs, method=True)
    return producer.enqueue_to(queue, job_class, *sent)


class JobFunction(Generic[P, R]):
    """A plain function registered as a job; calling it still calls the function, and
    ``enqueue`` sends it with arguments type-checked against its parameters."""

    def __init__(self, func: Callable[P, R], job_class: type[Job]) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.job_class = job_class

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def enqueue(self, producer: Producer[T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Enqueue on the job's ``queue``: ``archive.enqueue(resque, 44, "main")``."""
        return self.enqueue_to(producer, _queue_of(self.job_class), *args, **kwargs)

    def enqueue_to(
        self, producer: Producer[T], queue: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Enqueue on ``queue`` (typed.py says how keywords are sent)."""
        return producer.enqueue_to(queue, self, *positional(self.func, args, kwargs))


JobRef = type[Job] | JobFunction[..., Any] | str


class Registry:
    """Resque name -> job class. Only registered classes can run."""

    def __init__(self) -> None:
        self._jobs: dict[str, type[Job]] = {}

    def register(self, job_class: type[Job], *aliases: str) -> type[Job]:
        """Register ``job_class`` under its ``resque_name`` and any extra names."""
        for name in (job_class.resque_name, *aliases):
            existing = self._jobs.get(name)
            if existing is not None and _origin(existing) != _origin(job_class):
                raise ValueError(
                    f"job name {name!r} is already registered to {_origin(existing)}; "
                    f"give {_origin(job_class)} another name with `name=`"
                )
            self._jobs[name] = job_class
        return job_class

    @overload
    def job(
        self, func: Callable[P, R], *, name: str | None = None, queue: str | None = None
    ) -> JobFunction[P, R]: ...

    @overload
    def job(
        self, func: None = None, *, name: str | None = None, queue: str | None = None
    ) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...

    def job(
        self,
        func: Callable[P, R] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
    ) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
        """Decorator: register a plain function as a job; it receives the positional args."""

        def wrap(f: Callable[P, R]) -> JobFunction[P, R]:
            call: Callable[..., Any] = f  # the worker has positional arguments only

            def perform(self: Job, *args: Any) -> Any:
                return call(*args)

            job_class = type(
                f.__name__,
                (Job,),
                {
                    "perform": perform,
                    "queue": queue,
                    "__module__": f.__module__,
                    "__qualname__": f.__qualname__,
                },
                name=name or f.__name__,
                register=False,
            )
            self.register(job_class)
            return JobFunction(f, job_class)

        return wrap(func) if func is not None else wrap

    def warm(self) -> None:
        """Work out now how each registered job's ``perform`` is called (its signature,
        ~100 µs cold): fork mode's zygote does, so its children need not, each."""
        for job_class in self._jobs.values():
            _takes_positional(job_class.perform)

    def get(self, name: str) -> type[Job]:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJob(
                f"no job class is registered under {name!r}; define a pyresque.Job subclass "
                f"named so (or with name={name!r}) in a module the worker imports (--app)"
            ) from None

    def find(self, name: str) -> type[Job] | None:
        """The job class registered under ``name``, or None."""
        return self._jobs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def names(self) -> list[str]:
        return sorted(self._jobs)


def _origin(job_class: type[Job]) -> str:
    return f"{job_class.__module__}.{job_class.__qualname__}"


def job_name(job: JobRef) -> str:
    """The Resque name of a job class, job function or name string."""
    if isinstance(job, str):
        return job
    if isinstance(job, JobFunction):
        return job.job_class.resque_name
    return job.resque_name


#: The application's registry. ``Job`` subclasses and ``@job`` functions land here.
registry = Registry()
job = registry.job
