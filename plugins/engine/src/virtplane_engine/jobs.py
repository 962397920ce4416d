"""Jobs: long operations run by the engine, persisted in the state store.

A job is created ``queued`` (waiting for its objects' locks), becomes
``started``, reports steps and progress, and ends ``finished`` (with a result),
``failed`` (with the error) or ``aborted`` (cancelled). Each change is written
with compare-and-set, by this runner only, so the record is always the truth
a client reads with ``virtplane job show``.

Nothing hangs forever: a job still running after ``job_timeout`` is failed
and asked to cancel; on SIGTERM running jobs get ``stop_timeout`` to finish and
are then cancelled (a migration aborts and the VM stays on its source) or
failed; after a SIGKILL, :meth:`JobRunner.recover` fails every job the dead
engine left queued or started, and the monitor's first cycle reconciles the
VMs they worked on with what the hosts report.

Every job records the engine that runs it (its lease holder name). When several
engines share a server store, a restarting engine cannot tell a dead engine's
jobs from a live one's by their status; the leader does it with the presence
leases instead (:func:`fail_orphans`): the unfinished jobs of an engine whose
presence lease ran out are failed, each once (compare-and-set), and nothing
else. A job is never run again by another engine: it is failed, and the VM it
worked on is reconciled with its host by the engine that monitors it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from virtplane import model
from virtplane.errors import Conflict, NotFound
from virtplane.events import correlation
from virtplane.state import StateStore
from virtplane_engine.codes import LEVEL, Code
from virtplane_engine.locks import Cancelled, ObjectLocks
from virtplane_engine.settings import EngineSettings, default_id

log = logging.getLogger("virtplane.engine.jobs")

#: the smallest progress change worth a store write, and the longest silence
_PROGRESS_STEP = 5
_PROGRESS_EVERY = 1.0

#: why a job left behind by an engine that died is failed
DIED = ("the engine running this job stopped (killed or crashed) before it ended; what "
        "the hosts report was taken as the truth")


class JobHandle:
    """A job this engine runs: its latest stored copy and its cancel flag."""

    def __init__(self, job: model.Job) -> None:
        self.job = job
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.started_at: float | None = None
        self._last_write = 0.0

    @property
    def id(self) -> str:
        return self.job.id


_current = threading.local()


def current() -> JobHandle | None:
    """The job the calling thread runs, if any (for progress and cancel plumbing)."""
    handle: JobHandle | None = getattr(_current, "handle", None)
    return handle


class JobRunner:
    """Creates, runs, times out, cancels and recovers jobs."""

    def __init__(self, store: Callable[[], StateStore], locks: ObjectLocks,
                 settings: EngineSettings) -> None:
        self._store = store
        self.locks = locks
        self.settings = settings
        #: recorded with every job: the same name as this engine's leases
        self.engine_id = settings.engine_id or default_id()
        self._handles: dict[str, JobHandle] = {}
        self._guard = threading.Lock()
        self.stopping = False

    # ------------------------------------------------------------ records

    def _event(self, job: model.Job, code: Code, message: str) -> None:
        self._store().add_event(job.object_id or job.id, message, level=LEVEL[code],
                                code=int(code), correlation_id=job.correlation_id)
        log.info("%s", message, extra={"job": job.id, "code": int(code),
                                       "correlation_id": job.correlation_id})

    def _write(self, handle: JobHandle, change: Callable[[model.Job], None]) -> bool:
        """Apply ``change`` to the job and store it; False when the job already ended
        (a timed-out job's late result is dropped, never written over the failure)."""
        with handle.lock:
            store = self._store()
            for _ in range(3):
                job = store.get_job(handle.id)
                if job.status.done:
                    handle.job = job
                    return False
                change(job)
                try:
                    store.update_job(job)
                except Conflict:
                    continue
                handle.job = job
                return True
        log.warning("job %s: could not be updated (kept changing)", handle.id)
        return False

    def create(self, kind: str, object_id: str | None, correlation_id: str | None,
               description: str) -> JobHandle:
        """A new queued job with its first step."""
        job = model.Job(kind=kind, object_id=object_id,
                        steps=[model.JobStep(description=description,
                                             status=model.JobStatus.QUEUED)])
        if correlation_id:
            job.correlation_id = correlation_id
        self._store().add_job(job, engine=self.engine_id)
        handle = JobHandle(job)
        with self._guard:
            self._handles[job.id] = handle
        return handle

    def get(self, job_id: str) -> JobHandle | None:
        with self._guard:
            return self._handles.get(job_id)

    def running(self) -> list[JobHandle]:
        with self._guard:
            return [h for h in self._handles.values() if not h.done.is_set()]

    # -------------------------------------------------------------- running

    def run(self, handle: JobHandle, lock_keys: list[str],
            body: Callable[[JobHandle], dict[str, Any]]) -> model.Job:
        """Run ``body`` as the job (in the calling thread) once its locks are free.

        ``body`` returns the result; a result with a non-zero ``rc`` (a command line
        that failed) fails the job with its last stderr line. Returns the job as
        stored at the end.
        """
        try:
            with self.locks.hold(lock_keys, give_up=handle.cancel):
                if handle.cancel.is_set():
                    raise Cancelled("cancelled while queued")
                self._start(handle)
                _current.handle = handle
                try:
                    # the events the body writes carry the job's correlation id
                    with correlation(handle.job.correlation_id):
                        result = body(handle)
                finally:
                    _current.handle = None
        except Cancelled as exc:
            self._end(handle, model.JobStatus.ABORTED, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a job's failure is its result, recorded
            log.exception("job %s failed", handle.id, extra={"job": handle.id})
            self._end(handle, model.JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            rc = int(result.get("rc", 0))
            if rc == 0:
                self._end(handle, model.JobStatus.FINISHED, result=result)
            elif handle.cancel.is_set():
                self._end(handle, model.JobStatus.ABORTED, result=result,
                          error=_last_line(result) or "cancelled")
            else:
                self._end(handle, model.JobStatus.FAILED, result=result,
                          error=_last_line(result) or f"exit status {rc}")
        finally:
            handle.done.set()
            with self._guard:
                self._handles.pop(handle.id, None)
        return handle.job

    def _start(self, handle: JobHandle) -> None:
        handle.started_at = time.monotonic()

        def change(job: model.Job) -> None:
            job.status = model.JobStatus.STARTED
            for step in job.steps:
                step.status = model.JobStatus.STARTED

        if self._write(handle, change):
            self._event(handle.job, Code.JOB_STARTED,
                        f"job {handle.job.kind} {handle.id} started")

    def _end(self, handle: JobHandle, status: model.JobStatus,
             result: dict[str, Any] | None = None, error: str | None = None) -> None:
        def change(job: model.Job) -> None:
            job.status = status
            job.result = result
            job.error = error
            if status == model.JobStatus.FINISHED:
                job.progress = 100
            for step in job.steps:
                if not step.status.done:
                    step.status = status
                    if status == model.JobStatus.FINISHED:
                        step.progress = 100

        if self._write(handle, change):
            code = {model.JobStatus.FINISHED: Code.JOB_FINISHED,
                    model.JobStatus.ABORTED: Code.JOB_ABORTED}.get(status, Code.JOB_FAILED)
            self._event(handle.job, code, f"job {handle.job.kind} {handle.id} "
                        f"{status.value}" + (f": {error}" if error else ""))

    def progress(self, handle: JobHandle, percent: float, step: str | None = None) -> None:
        """Report progress (0-100); written when it moved enough or a second passed."""
        pct = max(0, min(100, int(percent)))
        now = time.monotonic()
        if (step is None and pct - handle.job.progress < _PROGRESS_STEP
                and now - handle._last_write < _PROGRESS_EVERY):
            return
        handle._last_write = now

        def change(job: model.Job) -> None:
            job.progress = pct
            if step is not None:
                for s in job.steps:
                    if not s.status.done:
                        s.status, s.progress = model.JobStatus.FINISHED, 100
                job.steps.append(model.JobStep(description=step))
            if job.steps:
                job.steps[-1].progress = pct

        self._write(handle, change)

    # ---------------------------------------------------------- cancel, ends

    def cancel(self, job_id: str) -> str:
        """Ask a job to stop; says what happens. A queued job is aborted at once; a
        running one stops where its operation allows (a migration aborts), else it
        runs to its end."""
        handle = self.get(job_id)
        if handle is None:
            job = self._store().get_job(job_id)
            if job.status.done:
                return f"job {job_id} already {job.status.value}"
            return f"job {job_id} is not run by this engine"
        handle.cancel.set()
        if handle.job.status == model.JobStatus.QUEUED:
            return f"job {job_id}: cancelled (it was queued)"
        return (f"job {job_id}: cancel requested; a migration aborts, other operations "
                "finish their current step")

    def check_timeouts(self) -> None:
        """Fail jobs running longer than ``job_timeout`` (and ask them to cancel)."""
        now = time.monotonic()
        for handle in self.running():
            if handle.started_at is not None and \
                    now - handle.started_at > self.settings.job_timeout:
                handle.cancel.set()
                self._end(handle, model.JobStatus.FAILED,
                          error=f"timed out after {self.settings.job_timeout:g} s")

    def stop(self, timeout: float) -> None:
        """SIGTERM: let running jobs finish within ``timeout``, then cancel them and
        give them a few more seconds; what still runs is failed (the next start's
        monitor reconciles the VM)."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        for handle in self.running():
            handle.done.wait(max(0.0, deadline - time.monotonic()))
        left = self.running()
        for handle in left:
            handle.cancel.set()
        for handle in left:
            handle.done.wait(5.0)
        for handle in self.running():
            self._end(handle, model.JobStatus.FAILED,
                      error="the engine stopped before the job ended; the VM is reconciled "
                            "with its host when the engine starts again")

    def recover(self) -> list[model.Job]:
        """At start, on a store only this engine uses: fail the jobs a dead engine left
        queued or started; returns them."""
        store = self._store()
        left = store.list_jobs(status=[model.JobStatus.QUEUED, model.JobStatus.STARTED])
        return [job for job in left if fail_left(store, job, DIED)]


def fail_left(store: StateStore, job: model.Job, error: str) -> bool:
    """Fail a job its engine left unfinished, with an event; False when it changed
    since it was read (its engine is alive after all, or another engine did it)."""
    job.status = model.JobStatus.FAILED
    job.error = error
    for step in job.steps:
        if not step.status.done:
            step.status = model.JobStatus.FAILED
    code = Code.JOB_FAILED_ON_RESTART
    message = f"job {job.kind} {job.id} failed: {error}"
    try:
        with store.transaction():  # the job's end and its event: both or neither
            store.update_job(job)
            store.add_event(job.object_id or job.id, message, level=LEVEL[code],
                            code=int(code), correlation_id=job.correlation_id)
    except (Conflict, NotFound) as exc:
        log.warning("job %s: not recovered: %s", job.id, exc)
        return False
    log.info("%s", message, extra={"job": job.id, "code": int(code),
                                   "correlation_id": job.correlation_id})
    return True


def fail_orphans(store: StateStore, live: set[str], stale_after: float) -> list[model.Job]:
    """The leader's duty on a shared store: fail the unfinished jobs of engines that are
    not ``live`` (no current presence lease), written ``stale_after`` seconds ago or
    earlier (an engine that just started may run a job before its first lease round).
    Jobs recorded without an engine are left alone. Returns the jobs failed."""
    engines = store.job_engines()
    gone = {job_id for job_id, engine in engines.items()
            if engine is not None and engine not in live}
    if not gone:
        return []
    now = time.time()
    failed = []
    for job in store.list_jobs(status=[model.JobStatus.QUEUED, model.JobStatus.STARTED]):
        if job.id not in gone or now - job.updated < stale_after:
            continue
        why = (f"engine {engines[job.id]}, which ran this job, stopped renewing its leases "
               "before the job ended; what the hosts report was taken as the truth")
        if fail_left(store, job, why):
            failed.append(job)
    return failed


def _last_line(result: dict[str, Any]) -> str:
    lines = [line for line in str(result.get("stderr", "")).splitlines() if line.strip()]
    return lines[-1].removeprefix("virtplane: error: ") if lines else ""
