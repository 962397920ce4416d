"""``/jobs``: the store's jobs (``search=correlation_id=X`` is how the SDK's
``helpers/jobs.py`` waits for an action it tagged with that id)."""

from __future__ import annotations

import datetime

from virtplane import model
from virtplane_api_ovirt import enums
from virtplane_api_ovirt.base import BASE, Call, Reply, Route, collection, entity, links
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher


def _time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def job_node(job: model.Job) -> Node:
    path = f"{BASE}/jobs/{job.id}"
    return {
        "href": path, "id": job.id, "description": job.kind + (
            f" ({job.error})" if job.error else ""),
        "link": links(path, "steps"),
        "auto_cleared": True, "external": False,
        "start_time": _time(job.created), "last_updated": _time(job.updated),
        "end_time": _time(job.updated) if job.status.done else None,
        "status": enums.JOB_STATUS.get(job.status, "unknown"),
    }


def searcher() -> Searcher[model.Job]:
    return Searcher("job", {
        "id": lambda j: [j.id], "correlation_id": lambda j: [j.correlation_id],
        "status": lambda j: [enums.JOB_STATUS.get(j.status, "unknown")],
        "description": lambda j: [j.kind], "name": lambda j: [j.kind],
    }, lambda j: f"{j.created:020.6f}")


def list_jobs(call: Call) -> Reply:
    found = call.search(searcher(), call.records(call.m.store.list_jobs(),
                                                 lambda j: j.object_id))
    return collection("jobs", "job", [job_node(j) for j in found])


def get_job(call: Call) -> Reply:
    job = call.m.store.get_job(call.params["id"])
    call.require_record(job.object_id)
    return entity("job", job_node(job))


def job_steps(call: Call) -> Reply:
    job = call.m.store.get_job(call.params["id"])
    call.require_record(job.object_id)
    steps = [{"href": f"{BASE}/jobs/{job.id}/steps/{i}", "id": str(i),
              "description": s.description, "number": i, "progress": s.progress,
              "status": enums.JOB_STATUS.get(s.status, "unknown"), "type": "executing"}
             for i, s in enumerate(job.steps, 1)]
    return collection("steps", "step", steps)


ROUTES: list[Route] = [
    ("GET", "/jobs", list_jobs),
    ("GET", "/jobs/{id}", get_job),
    ("GET", "/jobs/{id}/steps", job_steps),
]
