"""Error shapes a real server cannot easily produce, through httpx.MockTransport."""

import httpx
import pytest

from regctl.http.api import RegistryApi
from regctl.errors import BadResponse, ExitCode, NotAuthorized, NotFound, Unreachable, UsageError


def api_with(handler, timeout=2.0):
    return RegistryApi("http://registry.test:8082", timeout=timeout, transport=httpx.MockTransport(handler))


def respond(status, body=b"", ctype="application/json"):
    return lambda request: httpx.Response(status, content=body, headers={"content-type": ctype})


@pytest.mark.parametrize("status,body,ctype,cls,words", [
    (502, b"<html>Bad Gateway</html>", "text/html", BadResponse, "HTML"),
    (200, b"<!doctype html><p>login</p>", "text/html", BadResponse, "HTML"),
    (200, b"", "application/json", BadResponse, "empty body"),
    (200, b'[{"service_name": "a"', "application/json", BadResponse, "invalid JSON"),
    (200, b'{"not": "a list"}', "application/json", BadResponse, "expected a JSON list"),
    (500, b'{"detail": "boom"}', "application/json", BadResponse, "HTTP 500: boom"),
    (503, b"", "text/plain", BadResponse, "HTTP 503"),
    (401, b'{"detail": "no token"}', "application/json", NotAuthorized, "HTTP 401"),
    (404, b'{"detail": "Not Found"}', "application/json", BadResponse, "does not exist"),
])
def test_unusable_answers_become_one_line_errors(status, body, ctype, cls, words):
    with api_with(respond(status, body, ctype)) as api, pytest.raises(cls) as exc:
        api.list_services()
    assert words in str(exc.value)
    assert exc.value.exit_code == ExitCode.UNAVAILABLE
    assert "\n" not in str(exc.value)
    assert "registry.test" in str(exc.value)


def test_deeply_nested_json_is_not_a_crash():
    body = b"[" * 100000 + b"]" * 100000
    with api_with(respond(200, body)) as api, pytest.raises(BadResponse):
        api.list_services()


def test_url_404_with_detail_is_no_not_unavailable():
    with api_with(respond(404, b'{"detail": "No healthy instances found"}')) as api, pytest.raises(NotFound) as exc:
        api.url("asr")
    assert exc.value.exit_code == ExitCode.NO


def test_validation_422_is_usage():
    body = b'{"detail": [{"loc": ["query", "instance_id"], "msg": "field required", "type": "missing"}]}'
    with api_with(respond(422, body)) as api, pytest.raises(UsageError) as exc:
        api.deregister("a", "b")
    assert "instance_id: field required" in str(exc.value)


def test_transport_errors():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with api_with(refuse) as api, pytest.raises(Unreachable) as exc:
        api.list_services()
    assert "connection refused" in str(exc.value)
    with api_with(slow, timeout=1.5) as api, pytest.raises(Unreachable) as exc:
        api.list_services()
    assert "1.5s" in str(exc.value) and "waiting for the answer" in str(exc.value)


def test_dns_hint_for_docker_name():
    def dns(request):
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    api = RegistryApi("http://config-service:8082", transport=httpx.MockTransport(dns))
    with pytest.raises(Unreachable) as exc:
        api.list_services()
    assert "localhost:8082" in str(exc.value)


def test_service_names_are_encoded_in_paths():
    seen = []

    def record(request):
        seen.append(request.url.raw_path)
        return httpx.Response(200, json=[])

    with api_with(record) as api:
        api.instances("a b?c")
    assert seen == [b"/api/v1/registry/services/a%20b%3Fc"]


def test_headers_are_sent_and_map_collects_errors():
    got = []

    def handler(request):
        got.append(request.headers.get("authorization"))
        if request.url.path.endswith("/bad"):
            return httpx.Response(500, json={"detail": "x"})
        return httpx.Response(200, json=[])

    api = RegistryApi("http://r.test", headers={"Authorization": "Bearer t"}, transport=httpx.MockTransport(handler))
    from regctl.http.api import instances_call
    res = api.map([instances_call("ok"), instances_call("bad")], return_exceptions=True)
    assert res[0] == [] and isinstance(res[1], BadResponse)
    assert got == ["Bearer t", "Bearer t"]
