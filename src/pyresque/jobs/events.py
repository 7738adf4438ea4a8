"""Events: the hooks that producers, workers and middleware plug into.

The names are php-resque's events and Ruby's worker hooks, in Python spelling.
A listener is a plain callable; a *middleware* is an object whose methods are
named after events or after positions in the middleware chain (``POSITIONS``),
registered all at once with ``Events.add``. The chain itself, and the built-in
middleware (retries, timeouts, unique locks, limits, history, these hooks), are
in pyresque/middleware/ (chain.py says where each runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Every event, with the arguments its listeners receive.
EVENTS: dict[str, str] = {
    "before_enqueue": "(job_class_name, args, queue, job_id); raise DontCreate to veto",
    "after_enqueue": "(job_class_name, args, queue, job_id)",
    "before_first_fork": "(worker), in the worker process, once",
    "before_fork": "(job), in the worker process before the child is forked",
    "after_fork": "(job), in the child process",
    "before_perform": "(job); raise DontPerform to skip the job quietly",
    "after_perform": "(job), after a successful perform",
    "on_failure": "(exception, job)",
    "before_pause": "(worker)",
    "after_pause": "(worker)",
    "worker_exit": "(worker)",
}

#: The middleware chain's positions (middleware/chain.py): an object with one of these
#: methods is a middleware.
POSITIONS: dict[str, str] = {
    "around_enqueue": "(job: Enqueuing, next) -> Payload | None, in the producer",
    "around_process": "(work: Work, next) -> Outcome, in the worker around the executor",
    "finishing": "(work, outcome, plan) -> FinishPlan, in the worker before the finish step",
    "finished": "(work, plan, recorded), in the worker after the finish step",
    "around_perform": "(job: Job, next) -> result, where the job runs (a child in fork mode)",
}

Listener = Callable[..., Any]


class Events:
    """A registry of listeners per event name."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {name: [] for name in EVENTS}
        #: Middleware in the order added; ``generation`` changes with them, so the
        #: chains built from them (middleware/chain.py) know when to build again.
        self.middleware: list[object] = []
        self.generation = 0

    def listen(self, event: str, callback: Listener) -> Listener:
        """Call ``callback`` whenever ``event`` fires. Returns it, so it works as a decorator."""
        self._check(event)
        self._listeners[event].append(callback)
        return callback

    def stop_listening(self, event: str, callback: Listener) -> None:
        self._check(event)
        if callback in self._listeners[event]:
            self._listeners[event].remove(callback)

    def add(self, middleware: object) -> None:
        """Register every method of ``middleware`` that is named after an event, and the
        object as a middleware of the chain if it has a method named after a position."""
        for name in EVENTS:
            method = getattr(middleware, name, None)
            if callable(method):
                self._listeners[name].append(method)
        if any(callable(getattr(middleware, name, None)) for name in POSITIONS):
            self.middleware.append(middleware)
            self.generation += 1

    def clear(self) -> None:
        for listeners in self._listeners.values():
            listeners.clear()
        self.middleware.clear()
        self.generation += 1

    def heard(self, event: str) -> bool:
        """Whether ``event`` has a listener."""
        return bool(self._listeners[event])

    def trigger(self, event: str, *args: Any) -> list[Any]:
        """Run the listeners of ``event`` in registration order; return their results."""
        listeners = self._listeners[event]
        return [callback(*args) for callback in listeners] if listeners else []

    def _check(self, event: str) -> None:
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; known events: {', '.join(EVENTS)}")


#: The process-wide events, used unless a ``Resque`` is given its own.
events = Events()
