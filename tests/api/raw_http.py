"""Raw HTTP to the API in tests: a client that sends the path byte for byte, and the
fault a refused request answers with."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any
from xml.etree import ElementTree

from tests.api.conftest import PASSWORD

XML = {"Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class Client:
    """Raw HTTP to the API (http.client: the path goes out byte for byte, with no
    dot-segment clean-up, so traversals reach the server as written)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.base = parts.path
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.token = self._login()

    def _login(self) -> str:
        form = urllib.parse.urlencode({"grant_type": "password", "scope": "ovirt-app-api",
                                       "username": "admin@internal", "password": PASSWORD})
        status, _headers, body = self.raw(
            "POST", "/ovirt-engine/sso/oauth/token", form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"}, auth=False)
        assert status == 200, body
        return str(json.loads(body)["access_token"])

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, *,
            auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = f"Bearer {self.token}"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=sent)
                reply = self.conn.getresponse()
                data = reply.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data

    def api(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return self.raw(method, self.base + path, body, headers)

    def json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, _h, reply = self.api(method, path, data, {
            "Accept": "application/json", "Content-Type": "application/json"})
        assert status < 300, (method, path, status, reply)
        return json.loads(reply) if reply else None

    def close(self) -> None:
        self.conn.close()


def fault(reply: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    """(status, detail) of a reply that must be a readable fault (XML or JSON)."""
    status, headers, body = reply
    if "json" in headers["content-type"]:
        return status, str(json.loads(body)["detail"])
    root = ElementTree.fromstring(body)
    assert root.tag == "fault", body
    return status, root.findtext("detail") or ""
