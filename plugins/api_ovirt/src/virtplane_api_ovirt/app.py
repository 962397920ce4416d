"""The ASGI application: SSO endpoints, authentication, dispatch, rendering, faults.

:func:`create_app` takes a :class:`virtplane.Manager` and returns a Starlette
app; the engine serves it (entry point group ``virtplane.frontends``, name
``ovirt``), and ``virtplane-api serve`` runs it alone under uvicorn.

Every request under ``/ovirt-engine/api`` is authenticated (a bearer token from
the SSO endpoint, or HTTP Basic for curl users), its body parsed (XML, or JSON
when sent as JSON), and its handler run in a worker thread, because the
services block on SQLite and libvirt; requests are therefore served
concurrently (the SDK's logout, on a second connection, must not wait behind
an idle keep-alive connection). Replies are XML unless the client accepts JSON
only; errors are ``<fault>`` replies with the code from :mod:`.faults`, never a
traceback; every reply carries a ``Content-Type``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from virtplane.errors import VirtplaneError
from virtplane_api_ovirt import faults, guard, parse, render
from virtplane_api_ovirt.auth import ADMIN, Sessions, UserStore
from virtplane_api_ovirt.authz import Authz, LoginRefused, codes
from virtplane_api_ovirt.base import BASE, Api, Call, Handler, ObjectLock, Reply, log

if TYPE_CHECKING:
    from virtplane import Manager

XML = "application/xml; charset=utf-8"
JSON = "application/json"
SSO_TOKEN = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT = "/ovirt-engine/services/sso-logout"
PKI_RESOURCE = "/ovirt-engine/services/pki-resource"
HEALTH = "/ovirt-engine/services/health"
#: how long a Basic-auth credential stays verified (argon2 costs ~0.1 s per check)
BASIC_CACHE_SECONDS = 60.0


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "xml" not in accept


def _reply(reply: Reply, as_json: bool) -> Response:
    headers = dict(reply.headers)
    if not reply.tag:  # DELETE
        return Response(b"", status_code=reply.status, headers=headers,
                        media_type=JSON if as_json else XML)
    if as_json:
        if reply.node is not None:
            text = render.json_entity(reply.node)
        else:
            text = render.json_collection(reply.item, reply.members())
        return Response(text, status_code=reply.status, headers=headers, media_type=JSON)
    if reply.node is not None:
        text = render.xml_entity(reply.tag, reply.node)
    elif reply.xml_items is not None:
        text = render.xml_collection(reply.tag, reply.xml_items)
    else:
        text = render.xml_collection(reply.tag,
                                     render.xml_fragments(reply.item, reply.members()))
    return Response(text, status_code=reply.status, headers=headers, media_type=XML)


def _fault(exc: BaseException, as_json: bool, headers: dict[str, str] | None = None) -> Response:
    code, node = faults.fault(exc)
    if code >= 500 and not isinstance(exc, faults.ApiError):
        if isinstance(exc, VirtplaneError):  # a known failure whose message says it all
            log.warning("request failed: %s", exc)
        else:  # a bug: the traceback is what finds it
            log.error("request failed", exc_info=exc)
    if as_json:
        return Response(render.json_entity(node), status_code=code, media_type=JSON,
                        headers=headers)
    return Response(render.xml_entity("fault", node), status_code=code, media_type=XML,
                    headers=headers)


class _App:
    """The request handling around the handlers (one per app)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._basic: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------ auth

    async def authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            # shared sessions are a database round trip: not on the event loop
            user = (await run_in_threadpool(self._bearer_user, value.strip())
                    if self.api.sessions.shared else self._bearer_user(value.strip()))
            if user is not None:
                return user
            raise faults.ApiError(401, "the access token is unknown, expired or revoked, or "
                                       "its user was removed or locked; log in again")
        if scheme.lower() == "basic" and value:
            return await self._basic_user(value.strip())
        raise faults.ApiError(401, "authentication required: a bearer token from "
                                   f"{SSO_TOKEN}, or HTTP Basic")

    def _bearer_user(self, token: str) -> str | None:
        session = self.api.sessions.check(token)
        if session is not None and self.api.authz.active(session.user) is not None:
            return session.user
        return None

    async def _basic_user(self, value: str) -> str:
        key = hashlib.sha256(value.encode()).hexdigest()
        hit = self._basic.get(key)
        if hit is not None and hit[1] > time.monotonic() and \
                self.api.authz.active(hit[0]) is not None:
            return hit[0]
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            raise faults.ApiError(401, "malformed Basic credentials") from None
        try:
            found = await run_in_threadpool(self.api.authz.login, user, password,
                                            source=" (HTTP Basic)")
        except LoginRefused as exc:
            raise faults.ApiError(401, str(exc)) from None
        self._basic[key] = (found.name, time.monotonic() + BASIC_CACHE_SECONDS)
        return found.name

    # -------------------------------------------------------------- dispatch

    def endpoint(self, handlers: dict[str, Handler], route: str = "") -> Callable[
            [Request], Awaitable[Response]]:
        """The Starlette endpoint of one path (``route``: the path under the API, as
        the permission rules name it)."""
        async def serve(request: Request) -> Response:
            as_json = _wants_json(request)
            handler = handlers.get(request.method)
            try:
                # the permission index: its freshness read once, for the whole request
                with self.api.authz.request():
                    user = await self.authenticate(request)
                    if not handlers:
                        raise faults.ApiError(404, f"there is no resource at "
                                                   f"{request.url.path}")
                    if handler is None:
                        raise faults.ApiError(405, f"{request.method} is not allowed on "
                                                   f"{request.url.path}")
                    body, tag = await _body(request)
                    query = {k: v for k, v in request.query_params.items() if v != ""}
                    call = Call(self.api, dict(request.path_params), query, body, tag, user)
                    reply = await run_in_threadpool(self.guarded, request.method, route,
                                                    handler, call)
                return _reply(reply, as_json)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a <fault>, logged when unexpected
                headers = ({"WWW-Authenticate": 'Basic realm="RESTAPI"'}
                           if faults.status_of(exc) == 401 else None)
                return _fault(exc, as_json, headers)

        return serve

    def guarded(self, method: str, route: str, handler: Handler, call: Call) -> Reply:
        """Check the call's permission, run the handler, record the change (a worker
        thread: the check reads the state store)."""
        authz = self.api.authz
        checked = guard.authorize(call, method, route, authz)
        guard.record(call, method, route, checked, authz)
        with self.api.extras.request():  # sees what other engines wrote before
            reply = handler(call)
        guard.cleanup(call, method, route, authz)
        return reply

    # ------------------------------------------------------------------- SSO

    async def token(self, request: Request) -> Response:
        """``POST /ovirt-engine/sso/oauth/token``: the password grant the SDK uses."""
        form = await _form(request)
        grant = form.get("grant_type", "")
        scope = form.get("scope", "")
        if grant != "password":
            return _sso_error("unsupported_grant_type",
                              f"grant type {grant!r} is not supported; use password")
        if "ovirt-app-api" not in scope.split():
            return _sso_error("invalid_scope", "the scope must include ovirt-app-api")
        user, password = form.get("username", ""), form.get("password", "")
        try:
            found = await run_in_threadpool(self.api.authz.login, user, password)
            token, session = await run_in_threadpool(self.api.sessions.issue, found.name)
        except LoginRefused as exc:
            return _sso_error("access_denied", str(exc))
        except VirtplaneError as exc:  # the shared database is away: say so, no traceback
            log.warning("login of %s failed: %s", user, exc)
            return _sso_error("server_error", str(exc), faults.status_of(exc))
        return Response(json.dumps({"access_token": token, "scope": scope,
                                    "exp": str(int(session.expires * 1000)),
                                    "token_type": "bearer"}), media_type=JSON)

    async def logout(self, request: Request) -> Response:
        """``/ovirt-engine/services/sso-logout``: revoke the token; ``{}``."""
        form = await _form(request)
        token = form.get("token", "")
        try:
            session = await run_in_threadpool(self.api.sessions.revoke, token)
        except VirtplaneError as exc:
            log.warning("logout failed: %s", exc)
            return _sso_error("server_error", str(exc), faults.status_of(exc))
        if session is not None:
            user = self.api.authz.store.index().users.get(session.user)
            await run_in_threadpool(self.api.authz.audit, user.id if user else "users",
                                    f"User {session.user} logged out.",
                                    code=codes.USER_LOGOUT)
        return Response("{}", media_type=JSON)

    async def pki_resource(self, request: Request) -> Response:
        """The CA certificate, unauthenticated, at the engine's address for it."""
        if request.query_params.get("resource") != "ca-certificate" or self.api.pki is None:
            return Response("only resource=ca-certificate is served here\n", status_code=404,
                            media_type="text/plain")
        from virtplane_api_ovirt.pki import ca_pem

        return Response(ca_pem(self.api.pki), media_type="application/x-x509-ca-cert")


async def _form(request: Request) -> dict[str, str]:
    """The query and the url-encoded form body (what the SDK posts), last value wins;
    parsed here rather than through python-multipart, for 4 small fields."""
    from urllib.parse import parse_qsl

    data = b""
    if request.method == "POST":
        async for chunk in request.stream():
            data += chunk
            if len(data) > 65536:
                break
    fields = dict(request.query_params)
    fields.update(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))
    return fields


def _sso_error(code: str, message: str, status: int = 400) -> Response:
    """The engine's SSO error for the REST API scope (the SDK raises AuthError on it)."""
    return Response(json.dumps({"error_code": code, "error": message}), status_code=status,
                    media_type=JSON)


async def _body(request: Request) -> tuple[render.Node | None, str | None]:
    if request.method not in ("POST", "PUT"):
        return None, None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > parse.MAX_BODY:
        raise faults.ApiError(413, f"the request body is larger than {parse.MAX_BODY} bytes")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > parse.MAX_BODY:
            raise faults.ApiError(413, f"the request body is larger than {parse.MAX_BODY} bytes")
    if not data.strip():
        return None, None
    if "json" in request.headers.get("content-type", ""):
        return parse.json_body(data), None
    tag, node = parse.xml_body(data)
    return node, tag


def all_routes() -> list[tuple[str, str, Handler]]:
    """Every resource module's routes (one module per resource kind)."""
    from virtplane_api_ovirt.resources import ROUTES

    return ROUTES


def create_app(manager: Manager, *, users: UserStore | None = None,
               sessions: Sessions | None = None, pki: Path | None = None,
               action_wait: float = 10.0, authz: Authz | None = None,
               object_lock: ObjectLock | None = None) -> Starlette:
    """The oVirt-compatible API over ``manager`` as an ASGI app.

    :param users: the user file (default: ``api-users.db`` beside the state file); on a
        PostgreSQL state store the users live in its database, shared by every engine,
        and this file is only copied in once when the database has none yet.
    :param authz: users, roles and permissions (default: over ``users``' file or the
        PostgreSQL store's database, with the configuration's directories, auditing
        into ``manager``'s event log).
    :param sessions: the token table (default: tokens valid for one hour); kept in the
        shared database when ``authz``'s store is one (PostgreSQL), else in memory.
    :param pki: the folder of the API's CA, served at ``pki-resource`` (None: not served).
    :param action_wait: seconds an action may run before it answers 202 ``pending``.
    :param object_lock: ``object_lock(kind, name)`` holds an object's lock while an
        action on it runs; the engine passes its own (``virtplane_engine.frontends``).
    """
    from virtplane_api_ovirt.auth import USERS_FILE

    if authz is None:
        path = users.path if users is not None else \
            manager.context.paths.state.parent / USERS_FILE
        authz = Authz.for_manager(manager, path)
    from virtplane_api_ovirt.extras import EXTRAS_FILE, Extras

    extras = Extras(manager.store)
    extras.migrate(manager.context.paths.state.parent / EXTRAS_FILE)  # an older version's
    try:
        extras.prune()
    except VirtplaneError as exc:  # only tidying: the API serves without it
        log.warning("could not remove the API's attributes of removed objects: %s", exc)
    from virtplane_api_ovirt.resources.clusters import migrate_descriptions

    migrate_descriptions(manager.store, extras)  # an older version's annotations
    sessions = sessions or Sessions()
    sessions.share(authz.store)  # the database of a PostgreSQL store: every engine's
    api = Api(manager, sessions, authz, pki, action_wait=action_wait,
              extras=extras, object_lock=object_lock)
    for service in ("vms", "hosts", "clusters", "datacenters", "storage", "disks",
                    "templates", "snapshots", "devices", "migrations", "arch"):
        getattr(manager, service)  # build the services before threads race to
    app_ = _App(api)
    by_path: dict[str, dict[str, Handler]] = {}
    for method, route, handler in all_routes():
        by_path.setdefault(route, {})[method] = handler
    routes = [StarletteRoute(BASE + route, app_.endpoint(handlers, route),
                             methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
              for route, handlers in by_path.items()]
    routes += [
        StarletteRoute(SSO_TOKEN, app_.token, methods=["POST", "GET"]),
        StarletteRoute(SSO_LOGOUT, app_.logout, methods=["POST", "GET"]),
        StarletteRoute(PKI_RESOURCE, app_.pki_resource, methods=["GET"]),
        StarletteRoute(HEALTH, _health, methods=["GET"]),
        StarletteRoute(BASE + "/{rest:path}", app_.endpoint({}),
                       methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _fault(faults.ApiError(status, str(getattr(exc, "detail", exc))),
                      _wants_json(request))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(api.close)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.state.api = api
    return app


async def _health(request: Request) -> Response:
    return Response("DB Up!Welcome to Health Status!", media_type="text/plain")


def admin_configured(users: UserStore) -> bool:
    """Whether the administrator's password was set (``virtplane-api set-password``)."""
    return users.authz.store.user_hash(ADMIN) is not None
