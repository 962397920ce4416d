"""Running actions the way the engine answers them.

An action that finishes within the API's wait (``Api.action_wait``) answers
200 ``<status>complete</status>``, or its fault. One that is still running
(a guest ignoring an ACPI shutdown, a large copy) answers 202 with
``<status>pending</status>`` and goes on in the background, its failure
logged as an event on the object; clients poll the object's status, as the
SDK's examples and Ansible do. ``<async>false</async>`` in the body waits for
the end however long it takes.

An action on a VM runs holding that VM's lock (``Api.object_lock``): under the
engine, the lock its CLI commands and its monitor take, so the monitor never
writes the VM between the action's read and its write.

With a ``correlation_id`` query parameter the action is also recorded as a job
(``/jobs?search=correlation_id=...``), which is how the SDK's
``helpers/jobs.py`` waits for it.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from virtplane import events, model
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.base import Call, Reply, done, log


def run(call: Call, what: str, object_id: str | None, fn: Callable[[], Any], *,
        lock: tuple[str, str] | None = None) -> Reply:
    """Run ``fn`` as the action ``what`` on ``object_id``; see the module docstring.

    :param lock: (kind, name) of the object whose lock ``fn`` runs under.
    """
    job = None
    correlation = call.query.get("correlation_id")
    store = call.m.store
    if correlation:
        job = model.Job(kind=what, object_id=object_id, correlation_id=correlation,
                        status=model.JobStatus.STARTED)
        store.add_job(job)

    def body() -> Any:
        try:
            # the events the action writes carry the request's correlation id
            with events.correlation(correlation):
                if lock is None:
                    result = fn()
                else:
                    with call.api.object_lock(*lock):
                        result = fn()
        except BaseException as exc:
            if job is not None:
                job.status, job.error = model.JobStatus.FAILED, str(exc)
                store.update_job(job)
            raise
        if job is not None:
            job.status, job.progress = model.JobStatus.FINISHED, 100
            store.update_job(job)
        return result

    future = call.api.executor.submit(body)
    blocking = parse.boolean(call.body, "async") is False
    try:
        future.result(timeout=None if blocking else call.api.action_wait)
    except concurrent.futures.TimeoutError:
        future.add_done_callback(lambda f: _late(call, what, object_id, f))
        extra = {"job": {"href": f"/ovirt-engine/api/jobs/{job.id}", "id": job.id}} if job else None
        return done(extra, status=202, state="pending")
    return done()


def _late(call: Call, what: str, object_id: str | None,
          future: concurrent.futures.Future[Any]) -> None:
    """An action that outlived its request ended: a failure goes to the object's events."""
    exc = future.exception()
    if exc is None:
        return
    log.warning("%s on %s failed after its request returned: %s", what, object_id, exc)
    if object_id is not None:
        call.m.store.add_event(object_id, f"{what} failed: {exc}", level="error")
