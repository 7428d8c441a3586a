"""An explicit --context beats the environment for the keys it sets; -v says who overrode whom;
prompts name the registry they will change. Against two real sandbox registries."""

from __future__ import annotations

import pytest

from regctl.http.api import RegistryApi
from regctl.settings import resolve
from tests.helpers import register, run_cli




def names(res):
    assert res.exit_code == 0, res
    return {s["name"] for s in res.json["services"]} - {"config-service"}  # each registry lists itself


@pytest.fixture
def prod_and_sandbox(make_registry):
    prod, sandbox = make_registry(), make_registry()
    register(prod, "only-in-prod", "p-1", health=None)
    register(sandbox, "only-in-sandbox", "s-1", health=None)
    res = run_cli("config", "set-context", "prod", "--config-url", prod.url)
    assert res.exit_code == 0, res
    return prod, sandbox


# --------------------------------------------------------------------------- settings.resolve

def test_resolve_explicit_context_beats_env_for_its_keys_only():
    env = {"CONFIG_SERVICE_URL": "http://sandbox:1", "REGCTL_TIMEOUT": "7"}
    ctx = {"config_url": "http://prod:8082"}
    s = resolve({}, env=env, context=ctx, context_name="prod", context_from_flag=True)
    assert s.endpoint.config_url == "http://prod:8082" and s.sources["config_url"] == "context"
    assert s.endpoint.timeout == 7.0 and s.sources["timeout"] == "env"  # the context does not set it
    assert any("CONFIG_SERVICE_URL" in n and "prod" in n for n in s.notes), s.notes
    assert not any("REGCTL_TIMEOUT" in n for n in s.notes)


def test_resolve_context_from_file_or_env_loses_to_env_and_says_so():
    env = {"CONFIG_SERVICE_URL": "http://sandbox:1"}
    s = resolve({}, env=env, context={"config_url": "http://prod:8082"}, context_name="prod")
    assert s.endpoint.config_url == "http://sandbox:1" and s.sources["config_url"] == "env"
    (note,) = s.notes
    assert "CONFIG_SERVICE_URL overrides context 'prod'" in note and "--context prod" in note


def test_resolve_flag_beats_explicit_context():
    s = resolve({"config_url": "http://flag:1"}, env={"CONFIG_SERVICE_URL": "http://env:1"},
                context={"config_url": "http://prod:8082"}, context_name="prod", context_from_flag=True)
    assert s.endpoint.config_url == "http://flag:1" and s.sources["config_url"] == "flag"


def test_resolve_explicit_context_headers_beat_env_headers_by_name():
    env = {"REGCTL_HEADERS": "X-Team: sandbox\nX-Env: env-only"}
    ctx = {"headers": {"X-Team": "prod"}}
    s = resolve({}, env=env, context=ctx, context_name="prod", context_from_flag=True)
    assert s.endpoint.headers == {"X-Env": "env-only", "X-Team": "prod"}
    s = resolve({}, env=env, context=ctx, context_name="prod")
    assert s.endpoint.headers["X-Team"] == "sandbox"
    assert any("x-team" in n for n in s.notes), s.notes


def test_resolve_explicit_context_tls_beats_env():
    s = resolve({}, env={"REGCTL_INSECURE": "1"}, context={"verify": True}, context_name="prod",
                context_from_flag=True)
    assert s.endpoint.verify is True and not s.warnings
    s = resolve({}, env={"REGCTL_INSECURE": "1"}, context={"verify": True}, context_name="prod")
    assert s.endpoint.verify is False


# --------------------------------------------------------------------------- through the CLI

def test_explicit_context_talks_to_the_context_not_the_env(prod_and_sandbox):
    prod, sandbox = prod_and_sandbox
    env = {"CONFIG_SERVICE_URL": sandbox.url}
    for argv in (("--context", "prod", "list"), ("list", "--context", "prod")):
        got = names(run_cli(*argv, "--source", "api", "-o", "json", env=env))
        assert got == {"only-in-prod"}, argv
    res = run_cli("list", "--context", "prod", "--source", "api", "-o", "json", "-v", env=env)
    assert "CONFIG_SERVICE_URL is set but --context prod sets config_url" in res.stderr, res


def test_context_chosen_by_env_or_file_still_loses_to_env_and_v_says_so(prod_and_sandbox):
    prod, sandbox = prod_and_sandbox
    env = {"CONFIG_SERVICE_URL": sandbox.url, "REGCTL_CONTEXT": "prod"}
    assert names(run_cli("list", "--source", "api", "-o", "json", env=env)) == {"only-in-sandbox"}
    res = run_cli("list", "--source", "api", "-o", "json", "-v", env=env)
    assert "CONFIG_SERVICE_URL overrides context 'prod'" in res.stderr, res
    quiet = run_cli("list", "--source", "api", "-o", "json", env=env)
    assert "overrides" not in quiet.stderr  # only with -v


def test_deregister_prompt_names_the_context_and_url(prod_and_sandbox):
    prod, sandbox = prod_and_sandbox
    res = run_cli("deregister", "only-in-prod", "p-1", "--context", "prod",
                  env={"CONFIG_SERVICE_URL": sandbox.url}, tty_stdin=True, input="n\n")
    assert res.exit_code == 1, res
    assert f"Deregister them from {prod.url} (context 'prod')?" in res.stderr, res
    with RegistryApi(prod.url, timeout=5) as api:  # answered no: still there
        assert [i.instance_id for i in api.instances("only-in-prod")] == ["p-1"]


def test_resolve_explicit_insecure_context_and_zk_tls_keys_one_by_one(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = resolve({}, env={"REGCTL_CA_BUNDLE": str(ca)}, context={"verify": False}, context_name="lab",
                context_from_flag=True)
    assert s.endpoint.verify is False and any("REGCTL_CA_BUNDLE" in n for n in s.notes)
    ctx = {"zk_client_kwargs": {"use_ssl": True}}  # the context turns TLS on but names no CA
    s = resolve({}, env={"REGCTL_ZK_CA": str(ca)}, context=ctx, context_name="lab", context_from_flag=True)
    assert s.endpoint.zk_client_kwargs["ca"] == str(ca)  # a key the context does not set still comes from the env
    assert not s.notes
