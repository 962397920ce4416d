"""The API without the SDK: a plain ``requests`` client, JSON, codes and headers."""

from __future__ import annotations

from typing import Any

import requests

from tests.api.conftest import PASSWORD


def _token(server: Any) -> str:
    root = server.url.rsplit("/api", 1)[0]
    reply = requests.post(f"{root}/sso/oauth/token", timeout=10,
                          headers={"Accept": "application/json"},
                          data={"grant_type": "password", "scope": "ovirt-app-api",
                                "username": "admin@internal", "password": PASSWORD})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["token_type"] == "bearer" and int(body["exp"]) > 0
    return str(body["access_token"])


def test_json_crud_and_content_types(server: Any) -> None:
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {_token(server)}",
                      "Accept": "application/json"})
    url = server.url
    created = s.post(f"{url}/vms", timeout=10,
                     json={"name": "j1", "cluster": {"name": "c1"},
                           "template": {"name": "Blank"}, "memory": str(256 << 20)})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    vm = created.json()
    assert vm["status"] == "down" and vm["memory"] == str(256 << 20)
    assert created.headers["location"] == vm["href"]
    assert {"rel": "diskattachments", "href": f"{vm['href']}/diskattachments"} in vm["link"]
    listed = s.get(f"{url}/vms", params={"search": "name=j1"}, timeout=10).json()
    assert [v["id"] for v in listed["vm"]] == [vm["id"]]
    assert s.get(f"{url}/vms", params={"search": "name=none"}, timeout=10).json() == {}
    started = s.post(f"{url}/vms/{vm['id']}/start", json={}, timeout=10)
    assert started.status_code == 200 and started.json()["status"] == "complete"
    conflict = s.delete(f"{url}/vms/{vm['id']}", timeout=10)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/json"
    assert "stop it before removing" in conflict.json()["detail"]
    assert s.post(f"{url}/vms/{vm['id']}/stop", json={}, timeout=10).status_code == 200
    gone = s.delete(f"{url}/vms/{vm['id']}", timeout=10)
    assert gone.status_code == 200 and gone.content == b""
    assert gone.headers["content-type"] == "application/json"
    missing = s.get(f"{url}/vms/{vm['id']}", timeout=10)
    assert missing.status_code == 404 and missing.json()["reason"] == "Not Found"


def test_xml_faults_and_auth(server: Any) -> None:
    url = server.url
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="RESTAPI"'
    assert anonymous.headers["content-type"].startswith("application/xml")
    assert anonymous.text.startswith("<fault><reason>Unauthorized</reason>")
    basic = requests.get(url, auth=("admin@internal", PASSWORD), timeout=10)
    assert basic.status_code == 200 and basic.text.startswith("<api>")
    bad = requests.get(url, auth=("admin@internal", "nope-nope"), timeout=10)
    assert bad.status_code == 401
    headers = {"Authorization": f"Bearer {_token(server)}"}
    unknown = requests.get(f"{url}/nosuchthing", headers=headers, timeout=10)
    assert unknown.status_code == 404 and unknown.text.startswith("<fault>")
    wrong = requests.put(f"{url}/events", headers=headers, data="<event/>", timeout=10)
    assert wrong.status_code == 405 and wrong.text.startswith("<fault>")
    entity = requests.post(f"{url}/vms", headers=headers, timeout=10,
                           data='<!DOCTYPE x [<!ENTITY a "b">]><vm><name>&a;</name></vm>')
    assert entity.status_code == 400 and "document type" in entity.text
    broken = requests.post(f"{url}/vms", headers=headers, data="<vm><name>", timeout=10)
    assert broken.status_code == 400 and "well-formed" in broken.text


def test_sso_errors_are_json_with_error(server: Any) -> None:
    root = server.url.rsplit("/api", 1)[0]
    reply = requests.post(f"{root}/sso/oauth/token", timeout=10,
                          data={"grant_type": "password", "scope": "ovirt-app-api",
                                "username": "nobody", "password": "x"})
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error_code"] == "access_denied"
    logout = requests.post(f"{root}/services/sso-logout", timeout=10,
                           data={"scope": "ovirt-app-api", "token": "unknown"})
    assert logout.status_code == 200 and logout.json() == {}
