"""The zygote: the small process that fork mode forks its job children from.

Why not fork the worker itself? A fork costs more the bigger the forking process
is, and every page a child then touches is copied. The worker holds redis-py,
ssl and asyncio (~36 MB), so each fork costs it milliseconds. The zygote is a
fresh interpreter that imports only the application's modules (``--app``), about
14 MB, and it forks each child *ahead* of its job, while the previous job runs and
the worker talks to Redis: a job waits for no fork at all. Each child still runs
exactly one job and exits, as in Resque.

The worker and the zygote talk over a SOCK_SEQPACKET socket pair, one message a
packet:

* zygote -> worker: ``ready <pid>`` with the child's two pipe ends attached (jobs
  to it, its outcome back), and ``exit <pid> <wait status>`` once it is reaped;
* worker -> zygote: ``next``: a child taken is done with (its job ended, or it died
  before taking one), fork its successor. Not sent as the child is taken: a fork
  then competes for the CPU with the job's start (on two cores it made an idle
  worker's pickup 10 to 30 times slower than the bare BRPOP loop's), and another
  child is ready anyway (``SPARE``).

The worker then talks to the child directly, as to any child (forking.py). A
worker with no ``--app`` modules (one started from the application's own code)
forks its zygote from itself instead, so children see everything the application
set up. The zygote dies with the worker, and its children die with it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque

from pyresque.exceptions import WorkerBroken
from pyresque.executors.child import (
    PARENT_FDS,
    Child,
    close_inherited,
    die_with_parent,
    fork_child,
    read_job_message,
    receive,
    reporter,
    run_job,
    send,
)
from pyresque.jobs import apps
from pyresque.jobs.apps import configure_logging, import_apps
from pyresque.jobs.events import Events, events
from pyresque.jobs.job import Job, Registry, registry
from pyresque.middleware.hooks import Performer
from pyresque.protocol.payload import Payload

log = logging.getLogger("pyresque.worker")

#: Children kept ready. One is not enough: a new child needs about as long to get
#: ready (Python's after-fork work, rehearse()) as a short job takes to run.
SPARE = 2

#: The wait status reported for a child whose zygote died before reporting it.
UNKNOWN_STATUS = -1

#: Seconds a zygote gets to have a child ready (importing the application included).
START_TIMEOUT = 60.0
#: Zygotes killed by a signal while starting, in a row, before the worker gives up.
KILLED_STARTS = 10


class ZygoteError(WorkerBroken):
    """The zygote exited before it could fork a child (it printed why)."""

    __module__ = "pyresque"


class Zygote:
    """The worker's end: start the zygote, take ready children, learn how they exited."""

    def __init__(
        self,
        app: tuple[str, ...],
        perform: Performer,
        jobs: Registry,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.app = app
        self.start_timeout = start_timeout
        self.perform = perform  # for a zygote forked from the worker (no app)
        self.jobs = jobs
        self.sock: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.ready: deque[Child] = deque()
        #: pids taken and still running, and the exit statuses reported for them
        self.running: set[int] = set()
        self.exits: dict[int, int] = {}

    def take(self) -> Child:
        """The next child waiting for a job; ``replace()`` it once done with it."""
        self.start()
        child = self.ready.popleft()
        self.running.add(child.pid)
        return child

    def replace(self) -> None:
        """A child taken is done with: the zygote forks its successor (see above)."""
        if self.sock is not None:  # else it died: the next take() starts another
            self._tell(b"next")

    def exit_status(self, pid: int, timeout: float = 5.0) -> int:
        """How child ``pid`` exited, once the zygote has reaped it (it is exiting)."""
        deadline = time.monotonic() + timeout
        while pid not in self.exits and self.sock is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not self._receive(timeout=left):
                self.close()  # it died (its children with it): the next take() starts another
                break
        self.running.discard(pid)
        return self.exits.pop(pid, UNKNOWN_STATUS)

    def collect(self) -> None:
        """Read, without waiting, what the zygote said meanwhile (the ready message of a
        successor), so that the next ``take`` finds a child without reading it then:
        that read (a ``select``, ``recv_fds``, ``pidfd_open``) came on the way to every
        other job's start."""
        if self.sock is not None and not self._receive(timeout=0):
            self.close()  # it died: the next take() starts another

    def done(self, pid: int) -> None:
        """Child ``pid`` reported its outcome: its exit status is of no interest."""
        self.running.discard(pid)
        self.exits.pop(pid, None)

    def close(self) -> int | None:
        """Stop the zygote: it sees end of file, and its waiting child its own. Returns
        its exit code (negative: the signal that killed it), if known."""
        while self.ready:
            self.ready.popleft().close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        code: int | None = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
            self.process = None
        elif self.pid:
            try:
                code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                pass
        self.pid = 0
        self.running.clear()
        self.exits.clear()
        return code

    # --- inside the worker --------------------------------------------------------

    def start(self) -> None:
        """Start the zygote unless it runs, and wait until a child is ready. A zygote that
        died (killed, say) is replaced; one that exits on its own before forking twice in
        a row (the application fails to import), is killed by a signal ``KILLED_STARTS``
        times in a row, or has no child ready in time, is an error."""
        exited = killed = 0
        while exited < 2 and killed < KILLED_STARTS:
            if self.sock is None:
                self._spawn()
            deadline = time.monotonic() + self.start_timeout
            alive = True
            while not self.ready and alive and (left := deadline - time.monotonic()) > 0:
                alive = self._receive(timeout=left)
            if self.ready:
                return
            if alive:  # stuck: importing the application, say
                self._kill()
                raise ZygoteError(
                    f"fork mode's zygote had no child ready within {self.start_timeout:g} s "
                    "(does an --app module hang when imported?); it was killed"
                )
            # Killed from outside (an operator, the OOM killer, a chaos test) says nothing
            # about the application: try again. Exiting on its own twice does.
            code = self.close()
            if code is not None and code < 0:
                killed += 1
            else:
                exited += 1
        if killed >= KILLED_STARTS:
            raise ZygoteError(
                f"fork mode's zygote was killed by a signal {killed} times while starting"
            )
        raise ZygoteError("fork mode's zygote exited before forking a child; its error is above")

    def _kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.close()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if self.app:
            # A fresh interpreter on the worker's sys.path, told the worker's log level
            # and format.
            argv = [
                sys.executable,
                "-m",
                "pyresque.executors.zygote",
                str(theirs.fileno()),
                str(os.getpid()),
                json.dumps(sys.path),
                str(logging.getLogger().getEffectiveLevel()),
                apps.configured_format,
                *self.app,
            ]
            self.process = subprocess.Popen(argv, pass_fds=[theirs.fileno()])
            self.pid = self.process.pid
        else:
            parent = os.getpid()
            self.pid = os.fork()
            if self.pid == 0:
                code = 0
                try:
                    ours.close()
                    close_inherited()
                    serve(theirs, parent, self.jobs, self.perform)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
        theirs.close()
        self.sock = ours

    def _tell(self, message: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.send(message)
        except OSError:
            pass  # it died: the next take() sees end of file and says so

    def _receive(self, timeout: float | None) -> bool:
        """Read the zygote's messages (at least one, waiting up to ``timeout``; None:
        no limit). Returns False when the zygote is gone."""
        assert self.sock is not None
        wait = timeout
        while select.select([self.sock], [], [], wait)[0]:
            try:
                message, fds, _, _ = socket.recv_fds(self.sock, 64, 2)
            except ConnectionResetError:
                message, fds = b"", []
            if not message:
                return False
            kind, *numbers = message.split()
            pid = int(numbers[0])
            if kind == b"ready":
                try:
                    pidfd = os.pidfd_open(pid)
                except ProcessLookupError:  # it died already; its exit follows
                    for fd in fds:
                        os.close(fd)
                else:
                    self.ready.append(Child(pid, pidfd, fds[1], fds[0], waiter=self.exit_status))
                    PARENT_FDS.update((pidfd, *fds))
            elif pid in self.running:
                self.exits[pid] = int(numbers[1])
            wait = 0  # then whatever else is waiting, without blocking
        return True


# --- inside the zygote --------------------------------------------------------------


def serve(sock: socket.socket, parent: int, jobs: Registry, perform: Performer) -> None:
    """The zygote's loop: keep ``SPARE`` children ready, fork another each time one is
    taken, and report every child's exit. Returns when the worker closes its end."""
    die_with_parent(parent)
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)  # the worker decides what signals mean
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # SIGCHLD wakes the loop through a pipe, so reaping needs no polling.
    wake_reader, wake_writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_writer)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def fork_one() -> None:
        pid, job_writer, out_reader = fork_child(
            lambda job, outcome: run_one(job, outcome, jobs, perform),
            close=(sock.fileno(), wake_reader, wake_writer),
        )
        try:
            socket.send_fds(sock, [b"ready %d" % pid], [job_writer, out_reader])
        except OSError:
            sys.exit(0)  # the worker is gone: so are we (the child sees end of file)
        finally:
            os.close(job_writer)
            os.close(out_reader)

    jobs.warm()  # what every child's job would work out, once here
    perform.warm()
    rehearse()
    for _ in range(SPARE):
        fork_one()
    while True:
        readable = select.select([sock.fileno(), wake_reader], [], [])[0]
        if wake_reader in readable:
            try:
                os.read(wake_reader, 512)  # SIGCHLD tokens; more left over wake us again
            except BlockingIOError:
                pass
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                try:
                    sock.send(b"exit %d %d" % (pid, status))
                except OSError:
                    return  # the worker is gone: so are we
        if sock.fileno() in readable:
            try:
                message = sock.recv(64)
            except OSError:
                message = b""
            if not message:
                return  # the worker is gone or done: so are we
            if message == b"next":
                fork_one()


class _Rehearsal(Job, register=False):
    """A job that does nothing, run by each child before its real job (``rehearse``)."""

    def perform(self) -> None:
        pass


#: What a producer writes (php-resque's fields: an id, a prefix, a float ``queue_time``),
#: so that rehearsing decodes every kind of value a real payload holds: with only a
#: class and args, a job's first float (the C decoder calling ``parse_float``) and its
#: id still copied ~6 pages on the way to its first line.
REHEARSAL = (
    b'{"class":"pyresque.rehearsal","args":[{"x":1,"y":"z"}],'
    b'"id":"00000000000000000000000000000000","prefix":"","queue_time":1700000000.5}'
)


def rehearse() -> None:
    """Walk the path every job takes through a child (decode, hooks, perform, encode the
    outcome) once with a job that does nothing. A fresh child shares the zygote's memory
    until it writes to it, and merely running Python code writes (reference counts):
    ~200 pages are copied on a job's path, ~0.6 ms here. Rehearsing copies them while
    the child waits for its job, instead of while the job runs."""
    Performer(Events())(_Rehearsal(Payload.decode(REHEARSAL), "")).encode()


def run_one(jobs_fd: int, outcomes_fd: int, jobs: Registry, perform: Performer) -> None:
    """A job child's life: wait for its job, run it, report the outcome. End of file
    instead of a job (the worker stopped) means there is nothing to do."""
    rehearse()
    report = reporter(outcomes_fd)  # made while waiting: it needs nothing of the job
    message = receive(jobs_fd)
    if message is None:
        return
    queue, raw, checkpointed = read_job_message(message)
    payload = Payload.decode(raw)
    job = jobs.get(payload.class_name)(payload, queue)
    job.checkpointed, job.reporter = checkpointed, report
    perform.events.trigger("after_fork", job)
    send(outcomes_fd, run_job(perform, job, outcomes_fd).encode())


def main(argv: list[str]) -> None:
    """``python -m pyresque.zygote <socket fd> <worker pid> <sys.path as JSON> <log level>
    <log format> <app>...``"""
    fd, parent, path, level, log_format, *app = argv
    sys.path[:] = json.loads(path)
    configure_logging(int(level), log_format)
    import_apps(app)
    serve(socket.socket(fileno=int(fd)), int(parent), registry, Performer(events))


if __name__ == "__main__":
    main(sys.argv[1:])
