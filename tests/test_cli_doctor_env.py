"""doctor --env-file against a real registry (the file's Config Service URL probed, its service URL compared
with what is registered), Docker-network names that cannot be checked from here, and the table's layout."""

from __future__ import annotations

import re

from regctl.sandbox.proc import free_port
from tests import test_cli_doctor
from tests.helpers import register
from tests.test_cli_doctor import doctor, one, rows

tiny = test_cli_doctor.tiny  # the fixture, shared


def env_file(tmp_path, **values):
    f = tmp_path / ".env"
    f.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return str(f)


def test_the_files_config_service_url_is_probed_when_it_differs(registry, tmp_path):
    port = registry.url.rsplit(":", 1)[1]
    same_service = env_file(tmp_path, SERVICE_NAME="nmt", SERVICE_PORT="8091",
                            CONFIG_SERVICE_URL=f"http://localhost:{port}")
    row = one(doctor("env.config-url", "--env-file", same_service, "-o", "json", env=registry.env), "env.config-url")
    assert row["status"] == "pass" and "it answers /health" in row["finding"]
    nothing = f"http://127.0.0.1:{free_port()}"
    res = doctor("env.config-url", "--env-file", env_file(tmp_path, SERVICE_NAME="nmt", SERVICE_PORT="8091",
                                                          CONFIG_SERVICE_URL=nothing), "-o", "json", env=registry.env)
    row = one(res, "env.config-url")
    assert res.exit_code == 1 and row["status"] == "fail"
    assert nothing in row["finding"] and "refused" in row["finding"] and "CONFIG_SERVICE_URL" in row["hint"]
    docker = one(doctor("env.config-url", "--env-file", env_file(
        tmp_path, SERVICE_NAME="nmt", SERVICE_PORT="8091", CONFIG_SERVICE_URL="http://config-service:8082"),
        "-o", "json", env=registry.env), "env.config-url")
    assert docker["status"] == "warn" and "not checked" in docker["finding"]
    assert "docker compose exec" in docker["hint"] and "docker compose port" in docker["hint"]


def test_a_wrong_port_in_the_file_fails_naming_both_urls(registry, tmp_path):
    register(registry, "nmt", "nmt-1", url="http://127.0.0.1:8090")
    wrong = env_file(tmp_path, SERVICE_NAME="nmt", SERVICE_HOST="127.0.0.1", SERVICE_PORT="8091",
                     SERVICE_INSTANCE_ID="nmt-1", CONFIG_SERVICE_URL=registry.url)
    res = doctor("env.registered-url", "--env-file", wrong, "-o", "json", env=registry.env)
    row = one(res, "env.registered-url")
    assert res.exit_code == 1 and row["status"] == "fail"
    assert "http://127.0.0.1:8091" in row["finding"] and "http://127.0.0.1:8090" in row["finding"]
    right = env_file(tmp_path, SERVICE_NAME="nmt", SERVICE_HOST="127.0.0.1", SERVICE_PORT="8090",
                     SERVICE_INSTANCE_ID="nmt-1", CONFIG_SERVICE_URL=registry.url)
    assert one(doctor("env.registered-url", "--env-file", right, "-o", "json", env=registry.env),
               "env.registered-url")["status"] == "pass"
    # without an instance id: compared with every instance registered under the name
    no_id = env_file(tmp_path, SERVICE_NAME="nmt", SERVICE_HOST="127.0.0.1", SERVICE_PORT="8091",
                     CONFIG_SERVICE_URL=registry.url)
    row = one(doctor("env.registered-url", "--env-file", no_id, "-o", "json", env=registry.env), "env.registered-url")
    assert row["status"] == "fail" and "registered under nmt use http://127.0.0.1:8090" in row["finding"]
    unregistered = env_file(tmp_path, SERVICE_NAME="ghost", SERVICE_PORT="8091", CONFIG_SERVICE_URL=registry.url)
    row = one(doctor("env.registered-url", "--env-file", unregistered, "-o", "json", env=registry.env),
              "env.registered-url")
    assert row["status"] == "skip"


def test_docker_network_names_are_not_zombies(make_registry, tiny):
    registry = make_registry(self_url="http://config-service:8082")  # its own node, as in Docker Compose
    register(registry, "asr", "asr-1", url="http://asr-service:8090")
    register(registry, "tts", "tts-1", url=tiny(status=200).url)
    res = doctor("hygiene.zombies", "--all", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    (row,) = rows(res)["hygiene.zombies"]
    assert row["status"] == "warn" and row["target"] == "asr/asr-1"
    assert "cannot check from here" in row["finding"] and "zombie" not in row["finding"]
    assert "deregister" not in row["hint"] and "docker compose exec" in row["hint"]
    reach = one(doctor("service.reachable", "--service", "asr", "-o", "json", env=registry.env), "service.reachable")
    assert reach["status"] == "warn" and "deregister" not in reach["hint"]


def test_findings_wrap_to_the_terminal_width(registry):
    res = doctor("--no-color", env={**registry.env, "COLUMNS": "80"})
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert not [w for line in lines for w in line.split() if w.endswith("...")]  # wrapped, never cut
    unwrapped = doctor("--no-color", "-v", env=registry.env)
    assert max(len(line) for line in unwrapped.stdout.splitlines()) > 80  # off a terminal: no wrapping


def test_service_hides_rows_skipped_for_lack_of_input_unless_verbose(registry, tiny):
    register(registry, "asr", "asr-1", url=tiny(status=200).url)
    res = doctor("--service", "asr", "--no-color", env=registry.env)
    assert res.exit_code == 0, res
    assert "env.required" not in res.stdout and "hygiene.zombies" not in res.stdout
    assert re.search(r"\(-v shows \d+ without input\)$", res.stdout.splitlines()[-1]), res.stdout
    verbose = doctor("--service", "asr", "--no-color", "-v", env=registry.env)
    assert "env.required" in verbose.stdout and "hygiene.zombies" in verbose.stdout
    doc = doctor("--service", "asr", "-o", "json", env=registry.env).json
    assert one_of(doc, "env.required")["details"]["no_input"] is True  # JSON keeps every row


def one_of(doc, name):
    (row,) = [r for r in doc["checks"] if r["name"] == name]
    return row
