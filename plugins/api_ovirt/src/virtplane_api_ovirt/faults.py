"""virtplane's errors as oVirt faults: an HTTP code and a ``<fault>`` body.

The SDK picks its exception by code (401/403 ``AuthError``, 404
``NotFoundError``, anything else ``Error``) and reads ``<reason>`` and
``<detail>`` from the body, so the code carries the kind of failure and the
detail carries virtplane's own message, which names the rule that was broken.
Ansible retries on 409, which is why "the object is in the wrong state" and
"someone else changed it first" are 409.
"""

from __future__ import annotations

from virtplane import errors
from virtplane_api_ovirt.authz import LoginRefused
from virtplane_api_ovirt.authz.policy import Forbidden
from virtplane_api_ovirt.parse import NOT_XML
from virtplane_api_ovirt.render import Node


class ApiError(Exception):
    """A fault the API itself raises (an unknown path, an unsupported action ...)."""

    def __init__(self, status: int, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason or REASONS.get(status, "Operation Failed")


#: the reason line oVirt gives for each code
REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Operation Failed", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable",
}

#: virtplane error class -> HTTP code, most specific first (checked with isinstance)
CODES: list[tuple[type[BaseException], int]] = [
    (Forbidden, 403),
    (LoginRefused, 401),
    (errors.NotFound, 404),
    (errors.InvalidInput, 400),
    (errors.AlreadyExists, 409),
    (errors.InvalidState, 409),
    (errors.Conflict, 409),
    (errors.LeaseHeld, 409),
    (errors.NoSpace, 409),
    (errors.HookError, 409),
    (errors.StateUnavailable, 503),
    (errors.HostUnreachable, 503),
    (errors.StorageUnavailable, 503),
    (errors.HypervisorError, 409),
    (errors.VirtplaneError, 500),
]


def status_of(exc: BaseException) -> int:
    """The HTTP code for an error raised while serving a request."""
    if isinstance(exc, ApiError):
        return exc.status
    for cls, code in CODES:
        if isinstance(exc, cls):
            return code
    return 500


def fault(exc: BaseException) -> tuple[int, Node]:
    """(HTTP code, ``<fault>`` tree) for an error; unexpected errors keep their
    message but never a traceback (that goes to the server's log)."""
    code = status_of(exc)
    reason = exc.reason if isinstance(exc, ApiError) else REASONS.get(code, "Operation Failed")
    detail = str(exc) or type(exc).__name__
    if not isinstance(exc, (ApiError, errors.VirtplaneError)):
        detail = f"internal error ({type(exc).__name__}); see the server log"
    # a message quoting the request (its path, a value) may hold what XML cannot carry
    detail = NOT_XML.sub(lambda found: repr(found.group())[1:-1], detail)
    return code, {"reason": reason, "detail": f"[{detail}]"}
