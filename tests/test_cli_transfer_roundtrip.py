"""Whatever export writes, import accepts: odd names, statuses, sizes and strings survive export -> wipe -> import."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regctl.http.api import RegistryApi
from tests.helpers import assert_one_line_error, run_cli

BIG = "x" * (600 * 1024)  # over regctl's 512 KiB display limit, under ZooKeeper's 1 MiB


def register(url, name, iid, svc_url="http://h:1", health=None, meta=None):
    with RegistryApi(url, timeout=10) as api:
        api.register({"service_name": name, "service_url": svc_url, "health_check_url": health,
                      "service_metadata": {"instance_id": iid, **(meta or {})}})


def wipe(reg, kazoo_client):
    """Every instance node except the registry's own, as a restart without linger would."""
    base = reg.base_path
    for svc in kazoo_client.get_children(base):
        if svc == "config-service":
            continue
        path = f"{base}/{svc}/instances"
        for iid in kazoo_client.get_children(path) if kazoo_client.exists(path) else []:
            kazoo_client.delete(f"{path}/{iid}")


def node_data(reg, kazoo_client):
    """{(service, id): canonical node data} of every instance but the registry's own."""
    out = {}
    for svc in kazoo_client.get_children(reg.base_path):
        path = f"{reg.base_path}/{svc}/instances"
        for iid in kazoo_client.get_children(path) if svc != "config-service" and kazoo_client.exists(path) else []:
            out[(svc, iid)] = json.dumps(json.loads(kazoo_client.get(f"{path}/{iid}")[0]), sort_keys=True)
    return out


def services(text):
    """The exported services, the registry's own entry left out (its URL is per test run)."""
    doc = json.loads(text) if text.lstrip().startswith("{") else __import__("yaml").safe_load(text)
    return [s for s in doc["services"] if s["name"] != "config-service"]


ODD = [
    ("n" * 250, "i" * 250, "http://long:1", None, {"status": "healthy"}),
    (" padded ", " id ", "not a url at all", "also not", {"status": "degraded"}),
    ("status-up", "up-1", "http://up:1", "http://up:1/health", {"status": "UP"}),
    ("status-number", "one", "http://one:1", None, {"status": 1}),
    ("big", "big-1", "http://big:1", None, {"blob": BIG}),
    ("strings", "s-1", "http://s:1/\udc80", None,
     {"lone": "\ud800", "ctl": "\x1b[31m\x00\x85\x9b", "bidi": "\u202e\u2066", "nan": float("nan"),
      "tiny": 1e-05, "huge": 10 ** 40, "neg0": -0.0, "date-like": "2026-01-01", "yes": "yes", "null": "null",
      "nested": {"health_check_url": 5, "l": [True, 1, 1.0, None, "", {}]}, "café ☃": "ok"}),
    ("weird-health", "w-1", "http://w:1", None, {"health_check_url": ["not", "text"]}),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_odd_registrations_survive_export_wipe_import(registry, kazoo_client, tmp_path, fmt):
    for name, iid, url, health, meta in ODD:
        register(registry.url, name, iid, url, health, meta)
    backup = tmp_path / f"backup.{fmt}"
    res = run_cli("export", "-f", str(backup), env=registry.env)
    assert res.exit_code == 0, res
    first = backup.read_text(encoding="ascii")  # plain ASCII whatever the data
    if fmt == "json":  # strict JSON: NaN/Infinity are strings whose places are listed
        def no_constants(c):
            raise AssertionError(f"{c} in the JSON export")
        strict = json.loads(first, parse_constant=no_constants)
        assert strict["non_finite_numbers"] and all(p.startswith("/services/") for p in strict["non_finite_numbers"])
    registered = node_data(registry, kazoo_client)
    assert {s["name"] for s in services(first)} == {n for n, *_ in ODD}
    wipe(registry, kazoo_client)

    res = run_cli("import", str(backup), "--yes", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert len(res.json["results"]) == len(ODD) and {r["result"] for r in res.json["results"]} == {"registered"}
    warned = res.stderr
    assert "status 'UP' is not one the Config Service can parse" in warned  # a warning, not a refusal
    assert node_data(registry, kazoo_client) == registered
    again = run_cli("export", "-o", fmt, env=registry.env)
    assert again.exit_code == 0, again
    assert services(again.stdout) == services(first) or json.dumps(services(again.stdout)) == json.dumps(
        services(first))  # NaN != NaN: compare the text
    node = json.loads(kazoo_client.get(f"{registry.base_path}/strings/instances/s-1")[0])
    assert node["lone"] == "\ud800" and node["service_url"] == "http://s:1/\udc80" and node["tiny"] == 1e-05


def test_export_lists_what_it_cannot_write_and_exits_1(registry, kazoo_client, tmp_path):
    register(registry.url, "good", "g-1")
    path = f"{registry.base_path}/broken/instances"
    kazoo_client.create(f"{path}/not-json", b"\xff\xfe nope", ephemeral=True, makepath=True)
    kazoo_client.create(f"{path}/no-url", json.dumps({"instance_id": "no-url"}).encode(), ephemeral=True)
    backup = tmp_path / "b.yaml"
    res = run_cli("export", "-f", str(backup), env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "2 live instance(s)" in line
    assert f"not exported: {path}/not-json: node data is not UTF-8" in res.stderr
    assert f"not exported: {path}/no-url:" in res.stderr
    assert {s["name"] for s in services(backup.read_text())} == {"good"}  # the rest is still written

    res = run_cli("export", "goood", "-o", "json", env=registry.env)  # a typo is not an empty success
    line = assert_one_line_error(res, 1)
    assert "goood" in res.stderr and json.loads(res.stdout)["services"] == []
    res = run_cli("export", "goood", "-o", "json", env={"CONFIG_SERVICE_URL": registry.url})
    assert_one_line_error(res, 1)
    assert "no live instance" in res.stderr


def test_export_through_the_api_reports_a_service_it_cannot_read(registry, tmp_path):
    register(registry.url, "good", "g-1", meta={"status": "healthy"})
    register(registry.url, "bad-status", "b-1", meta={"status": "UP"})  # the API answers 500 for it
    res = run_cli("export", env={"CONFIG_SERVICE_URL": registry.url})
    assert_one_line_error(res, 1)
    assert "not exported: GET /services/bad-status" in res.stderr and "500" in res.stderr
    assert {s["name"] for s in services(res.stdout)} == {"good"}


def test_json_is_parsed_as_json_and_invalid_entries_can_be_skipped(registry, kazoo_client, tmp_path):
    doc = {"version": 1, "services": [
        {"name": "a", "instances": [
            {"instance_id": "a-1", "service_url": "http://a:1", "service_metadata": {"tiny": 1e-05, "on": "on"}},
            {"instance_id": "a/2", "service_url": "http://a:2"},
            {"instance_id": "a-3", "service_url": 7}]},
        {"name": "b", "instances": [{"instance_id": "b-1", "service_url": "http://b:1"}]},
        {"name": "", "instances": [{"instance_id": "x", "service_url": "http://x:1"}]}]}
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(doc))
    res = run_cli("import", str(path), "--yes", env=registry.env)
    line = assert_one_line_error(res, 2)
    assert "3 entries" in line and "nothing imported" in line
    for where in ("services[0].instances[1]", "services[0].instances[2]", "services[2].instances[0]"):
        assert where in res.stderr
    assert not kazoo_client.exists(f"{registry.base_path}/a")

    res = run_cli("import", str(path), "--yes", "--skip-invalid", "-o", "json", env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "3 invalid entries were skipped" in line
    assert len(res.json["invalid"]) == 3
    assert sorted(r["instance_id"] for r in res.json["results"]) == ["a-1", "b-1"]
    node = json.loads(kazoo_client.get(f"{registry.base_path}/a/instances/a-1")[0])
    assert node["tiny"] == 1e-05 and node["on"] == "on"  # a float, and not YAML 1.1's True

    wipe(registry, kazoo_client)
    res = run_cli("import", str(path), "--yes", "--skip-invalid", "--only", "b", "-o", "json", env=registry.env)
    assert [r["instance_id"] for r in res.json["results"]] == ["b-1"]
    assert_one_line_error(run_cli("import", str(path), "--yes", "--only", "nope", env=registry.env), 2)


def test_probe_writes_only_instances_that_answer(registry, kazoo_client, tmp_path):
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    register(registry.url, "svc", "up-1", registry.url, registry.url + "/health")
    register(registry.url, "svc", "down-1", dead, dead + "/health")
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=registry.env).exit_code == 0
    wipe(registry, kazoo_client)
    res = run_cli("import", str(backup), "--yes", "--probe", "--timeout", "2", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    items = {i["instance_id"]: i for i in res.json["plan"]["items"]}
    assert items["down-1"]["action"] == "down" and items["up-1"]["action"] == "add"
    assert kazoo_client.get_children(f"{registry.base_path}/svc/instances") == ["up-1"]


# --------------------------------------------------------------------------- property

_ZK_OK = st.characters(exclude_characters="/", exclude_categories=("Cs", "Cc", "Co"), max_codepoint=0xFFEF)
zk_names = st.text(_ZK_OK, min_size=1, max_size=60).filter(
    lambda s: s not in (".", "..", "config-service", "zookeeper") and "\ufeff" not in s)
_ODD_CHARS = st.sampled_from(["\ud800", "\udc80", "\x00", "\x1b", "\x85", "\x9b", "\u202e", "\u2028", "\ufeff",
                              "\U0001f600", "'", '"', "\\", ":", "#", "\n", " ", "é"])
# lone surrogates, controls, bidi marks and YAML's special characters, often
any_text = st.text(st.characters(exclude_categories=()) | _ODD_CHARS, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10 ** 30, max_value=10 ** 30)
    | st.floats(allow_nan=True, allow_infinity=True) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3), max_leaves=8)
statuses = st.sampled_from(["healthy", "unhealthy", "unknown", "starting", "stopping", "degraded", "UP", 1, None])
odd_text = st.text(_ODD_CHARS, min_size=1, max_size=6)  # in every example
instances = st.tuples(zk_names, zk_names, any_text | odd_text, st.none() | any_text | odd_text, statuses,
                      st.dictionaries(any_text.filter(lambda k: k not in ("instance_id", "status")), json_values,
                                      max_size=4),
                      st.sampled_from([0, 0, 0, 2000, 200 * 1024]))
registries = st.lists(instances, min_size=1, max_size=5, unique_by=lambda t: (t[0], t[1]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(regs=registries, fmt=st.sampled_from(["json", "yaml"]), odd=odd_text)
def test_any_registry_round_trips(registry, kazoo_client, regs, fmt, odd):
    wipe(registry, kazoo_client)
    for name, iid, url, health, status, meta, size in regs:
        meta = {**meta, "odd": odd}
        if status is not None:
            meta["status"] = status
        if size:
            meta["padding"] = "p" * size
        register(registry.url, name, iid, url, health, meta)
    first = run_cli("export", "-o", fmt, env=registry.env)
    assert first.exit_code == 0, first
    registered = node_data(registry, kazoo_client)
    assert len(registered) == len(regs)
    wipe(registry, kazoo_client)
    res = run_cli("import", "-", "--yes", "-o", "json", env=registry.env, input=first.stdout)
    assert res.exit_code == 0, res
    assert {r["result"] for r in res.json["results"]} <= {"registered"}
    again = run_cli("export", "-o", fmt, env=registry.env)
    assert again.exit_code == 0, again
    assert json.dumps(services(again.stdout), sort_keys=True) == json.dumps(services(first.stdout), sort_keys=True)
    assert node_data(registry, kazoo_client) == registered  # the very same nodes, byte for byte of JSON


def test_deep_metadata_round_trips_up_to_the_limit_and_is_listed_beyond(registry, kazoo_client, tmp_path):
    def nest(n):
        x = "leaf"
        for _ in range(n):
            x = {"k": [x]} if n % 2 else {"k": x}
        return x

    path = f"{registry.base_path}/deep/instances/too-deep"
    for fmt in ("yaml", "json"):
        register(registry.url, "deep", "ok", meta={"d": nest(250)})
        kazoo_client.create(path, json.dumps({"service_url": "http://x:1", "instance_id": "too-deep",
                                              "d": nest(400)}).encode(), ephemeral=True)
        backup = tmp_path / f"b.{fmt}"
        res = run_cli("export", "-f", str(backup), env=registry.env)
        assert_one_line_error(res, 1)
        assert f"not exported: {path}: node data is nested" in res.stderr
        before = node_data(registry, kazoo_client)
        wipe(registry, kazoo_client)
        res = run_cli("import", str(backup), "--yes", env=registry.env)
        assert res.exit_code == 0, res
        assert node_data(registry, kazoo_client) == {k: v for k, v in before.items() if k[1] == "ok"}
        wipe(registry, kazoo_client)
    doc = {"version": 1, "services": [{"name": "deep", "instances": [
        {"instance_id": "x", "service_url": "http://x:1", "service_metadata": {"d": nest(400)}}]}]}
    (tmp_path / "deep.json").write_text(json.dumps(doc))
    line = assert_one_line_error(run_cli("import", str(tmp_path / "deep.json"), "--yes", env=registry.env), 2)
    assert "nested more than 300 levels" in line
