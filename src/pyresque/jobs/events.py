"""Events: the hooks that producers, workers and middleware plug into.

The names are php-resque's events and Ruby's worker hooks, in Python spelling.
A listener is a plain callable; a *middleware* is an object whose methods are
named after events, registered all at once with ``Events.add``. Cross-cutting
features (retries, timeouts, metrics) are middleware, so the worker loop stays
short.
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

Listener = Callable[..., Any]


class Events:
    """A registry of listeners per event name."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {name: [] for name in EVENTS}

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
        """Register every method of ``middleware`` that is named after an event."""
        for name in EVENTS:
            method = getattr(middleware, name, None)
            if callable(method):
                self._listeners[name].append(method)

    def clear(self) -> None:
        for listeners in self._listeners.values():
            listeners.clear()

    def trigger(self, event: str, *args: Any) -> list[Any]:
        """Run the listeners of ``event`` in registration order; return their results."""
        listeners = self._listeners[event]
        return [callback(*args) for callback in listeners] if listeners else []

    def _check(self, event: str) -> None:
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; known events: {', '.join(EVENTS)}")


#: The process-wide events, used unless a ``Resque`` is given its own.
events = Events()
