"""Ctrl-C or a failure midway through import: the report says what was written and what was not."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def export_doc(instances):
    return {"version": 1, "kind": "regctl-export", "services": [
        {"name": name, "instances": [{"instance_id": iid, "service_url": f"http://{iid}.test:80",
                                      "health_check_url": None,
                                      "service_metadata": {"instance_id": iid, "status": "healthy", **meta}}
                                     for iid, meta in insts]}
        for name, insts in instances.items()]}


def live_ids(kazoo_client, base, service):
    path = f"{base}/{service}/instances"
    return set(kazoo_client.get_children(path)) if kazoo_client.exists(path) else set()


def test_ctrl_c_midway_through_an_import_reports_what_was_written(make_registry, kazoo_client, tmp_path):
    reg = make_registry(cache_ttl=0)
    ids = [f"a-{n:02}" for n in range(40)]  # 8 written at a time: several rounds
    path = tmp_path / "b.json"
    path.write_text(json.dumps(export_doc({"svc": [(i, {}) for i in ids]})))
    reg.server.simulate["delay"] = 0.8
    child = subprocess.Popen([sys.executable, "-m", "regctl", "import", str(path), "--yes", "--timeout", "10",
                              "-o", "json"], env={**os.environ, **reg.env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(live_ids(kazoo_client, reg.base_path, "svc")) < 8:
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # the second round is in flight
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, (out, err)
    assert "Traceback" not in err and not [l for l in err.splitlines() if l.startswith("regctl: error:")], err
    doc = json.loads(out)
    assert doc["interrupted"] is True
    results = {r["instance_id"]: r["result"] for r in doc["results"]}
    not_done = {i["instance_id"] for i in doc["not_done"]}
    assert not_done and set(results) | not_done == set(ids) and not set(results) & not_done
    assert {"registered"} <= set(results.values()) <= {"registered", "interrupted"}
    (line,) = [l for l in err.splitlines() if "interrupted: written" in l]
    assert "svc/a-00" in line and "not done" in line
    reg.server.simulate["delay"] = 0
    time.sleep(1.0)  # let an in-flight request finish on the server
    live = live_ids(kazoo_client, reg.base_path, "svc")
    assert {i for i, r in results.items() if r == "registered"} <= live
    assert not (not_done & live)  # what the report calls not done was not written

    res = run_cli("import", str(path), "--yes", "-o", "json", env=reg.env)  # and running it again finishes it
    assert res.exit_code == 0, res
    assert live_ids(kazoo_client, reg.base_path, "svc") == set(ids)


def test_a_failure_midway_is_reported_and_the_rest_is_still_written(registry, kazoo_client, tmp_path):
    from kazoo.security import make_acl

    # the registry cannot create b's node (a read-only ACL): its register answers 500 for that one only
    kazoo_client.create(f"{registry.base_path}/b")
    kazoo_client.create(f"{registry.base_path}/b/instances", acl=[make_acl("world", "anyone", read=True)])
    path = tmp_path / "b.json"
    path.write_text(json.dumps(export_doc({"a": [("a-1", {})], "b": [("b-1", {})], "c": [("c-1", {})]})))
    res = run_cli("import", str(path), "--yes", "-o", "json", env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "1 of 3 writes failed" in line and "b/b-1" in line
    results = {r["instance_id"]: r["result"] for r in res.json["results"]}
    assert results == {"a-1": "registered", "b-1": "failed", "c-1": "registered"}
    assert res.json["not_done"] == [] and res.json["interrupted"] is False
    assert live_ids(kazoo_client, registry.base_path, "c") == {"c-1"}
    assert not live_ids(kazoo_client, registry.base_path, "b")
