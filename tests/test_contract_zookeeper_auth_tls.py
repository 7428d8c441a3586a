"""ZooKeeper auth (digest ACLs) and TLS (secureClientPort), against real ZooKeeper servers.

* ACLs: nodes created with ``make_digest_acl`` in the session ZooKeeper: a base
  path readable by anyone with one service's ``instances`` node restricted, and a
  base path restricted as a whole. Without credentials list/inspect/watch/wait show
  one line and exit 3; with ``REGCTL_ZK_AUTH``, ``--zk-auth-file`` or the context's
  ``zk_auth`` they read; a wrong password says so.
* TLS: the packaged ZooKeeper 3.8 with a Netty secure client port and PEM
  keystore/truststore made at test time (``ssl.clientAuth=need``: a client
  certificate is required too).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_one_line_error, run_cli
from tests.tlsutil import make_certs

USER, PASSWORD = "ops", "zk-Pa55-9b1e"


def instance(iid: str) -> bytes:
    return json.dumps({"instance_id": iid, "service_url": f"http://{iid}:8000",
                       "health_check_url": f"http://{iid}:8000/health", "status": "healthy"}).encode()


@pytest.fixture
def admin(zk_server):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk_server.hosts, timeout=10, auth_data=[("digest", f"{USER}:{PASSWORD}")])
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


@pytest.fixture
def acl_tree(admin, zk_server):
    """``<root>/open``: base and ``open`` readable by anyone, ``locked/instances`` only by ops;
    ``<root>/closed``: the whole base restricted."""
    from kazoo.security import make_digest_acl

    acl = [make_digest_acl(USER, PASSWORD, all=True)]
    root = f"/regctl-acl-{secrets.token_hex(4)}"
    base = f"{root}/open"
    admin.create(f"{base}/web/instances/web-1", instance("web-1"), makepath=True)
    admin.create(f"{base}/locked", b"")
    admin.create(f"{base}/locked/instances", b"", acl=acl)
    admin.create(f"{base}/locked/instances/locked-1", instance("locked-1"), acl=acl)
    closed = f"{root}/closed"
    admin.create(closed, b"", acl=acl, makepath=True)
    admin.create(f"{closed}/api", b"", acl=acl)
    admin.create(f"{closed}/api/instances", b"", acl=acl)
    admin.create(f"{closed}/api/instances/api-1", instance("api-1"), acl=acl)
    try:
        yield {"open": base, "closed": closed, "hosts": zk_server.hosts}
    finally:
        admin.delete(root, recursive=True)


def zk_env(tree, base: str = "open", **extra) -> dict:
    # an unreachable Config Service: every read here must come from ZooKeeper
    return {"ZOOKEEPER_HOSTS": tree["hosts"], "ZOOKEEPER_BASE_PATH": tree[base],
            "CONFIG_SERVICE_URL": "http://127.0.0.1:9", **extra}


AUTH = f"digest:{USER}:{PASSWORD}"


# --------------------------------------------------------------------------- NOAUTH

def test_inspect_of_a_restricted_instances_node_is_one_line_exit_3(acl_tree):
    res = run_cli("inspect", "locked", "--source", "zk", env=zk_env(acl_tree))
    line = assert_one_line_error(res, 3)
    assert "NOAUTH" in line and "locked/instances" in line and "REGCTL_ZK_AUTH" in line, line


def test_list_with_a_restricted_service_is_one_line_exit_3(acl_tree):
    res = run_cli("list", "--source", "zk", env=zk_env(acl_tree))
    line = assert_one_line_error(res, 3)
    assert "NOAUTH" in line and "locked/instances" in line, line


def test_an_open_service_next_to_a_restricted_one_still_reads(acl_tree):
    res = run_cli("inspect", "web", "--source", "zk", "-o", "json", env=zk_env(acl_tree))
    assert res.exit_code == 0, res
    assert "web-1" in res.stdout


@pytest.mark.parametrize("args", [("list", "--source", "zk"), ("inspect", "api", "--source", "zk"),
                                  ("watch", "--for", "2"), ("wait", "api", "--timeout", "3")])
def test_a_restricted_base_is_one_line_exit_3(acl_tree, args):
    res = run_cli(*args, env=zk_env(acl_tree, "closed"))
    line = assert_one_line_error(res, 3)
    assert "NOAUTH" in line and acl_tree["closed"] in line, line


def test_doctor_reports_noauth_in_one_line(acl_tree):
    res = run_cli("doctor", "zookeeper", "-o", "json", env=zk_env(acl_tree, "closed"))
    assert res.exit_code != 0, res
    assert "Traceback" not in res.stderr
    assert "NOAUTH" in res.stdout, res.stdout


# --------------------------------------------------------------------------- with credentials

@pytest.mark.parametrize("how", ["env", "file", "context"])
def test_credentials_from_every_source_read_the_restricted_nodes(acl_tree, tmp_path, how):
    env = zk_env(acl_tree, "closed")
    args = ["inspect", "api", "--source", "zk", "-o", "json"]
    if how == "env":
        env["REGCTL_ZK_AUTH"] = AUTH
    elif how == "file":
        f = tmp_path / "zk-auth"
        f.write_text(AUTH + "\n")
        f.chmod(0o600)
        args += ["--zk-auth-file", str(f)]
    else:
        cfg = Path(os.environ["REGCTL_CONFIG"])
        cfg.write_text(yaml.safe_dump({"current-context": "dev", "contexts": {
            "dev": {"zk_auth": {"scheme": "digest", "credential": f"{USER}:{PASSWORD}"}}}}))
        cfg.chmod(0o600)
    res = run_cli(*args, env=env)
    assert res.exit_code == 0, res
    assert "api-1" in res.stdout
    assert PASSWORD not in res.stdout + res.stderr
    res = run_cli("list", "--source", "zk", "-vv", env={**env, "ZOOKEEPER_BASE_PATH": acl_tree["open"]},
                  *([] if how != "file" else ["--zk-auth-file", str(tmp_path / "zk-auth")]))
    assert res.exit_code == 0, res
    assert PASSWORD not in res.stdout + res.stderr


def test_wrong_password_says_the_credentials_do_not_grant_read(acl_tree):
    res = run_cli("inspect", "api", "--source", "zk", env=zk_env(acl_tree, "closed",
                                                                 REGCTL_ZK_AUTH=f"digest:{USER}:wrong-pw"))
    line = assert_one_line_error(res, 3)
    assert "NOAUTH" in line and "credentials" in line and "wrong-pw" not in res.stderr + res.stdout


@pytest.mark.parametrize("value", ["digest", "digest:nocolon", ":x"])
def test_malformed_zk_auth_is_a_usage_error_without_echo(acl_tree, value):
    res = run_cli("list", "--source", "zk", env=zk_env(acl_tree, REGCTL_ZK_AUTH=value))
    line = assert_one_line_error(res, 2)
    assert "REGCTL_ZK_AUTH" in line
    if len(value) > 6:
        assert value.split(":", 1)[1] not in line


def test_zk_auth_file_readable_by_others_warns(acl_tree, tmp_path):
    f = tmp_path / "zk-auth"
    f.write_text(AUTH)
    f.chmod(0o644)
    res = run_cli("inspect", "api", "--source", "zk", "--zk-auth-file", f, env=zk_env(acl_tree, "closed"))
    assert res.exit_code == 0, res
    assert len([l for l in res.stderr.splitlines() if str(f) in l and "chmod 600" in l]) == 1, res


# --------------------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def zk_tls(tmp_path_factory):
    """The packaged ZooKeeper with a plain client port and a TLS one (client certificate required)."""
    from regctl.sandbox import proc
    from regctl.sandbox import zookeeper as zk
    from regctl.errors import SandboxError

    certs = make_certs(tmp_path_factory.mktemp("zk-certs"))
    dir = tmp_path_factory.mktemp("zk-tls")
    tls = zk.tls_settings(certs.keystore, certs.ca, client_auth="need")
    members = zk.start_zookeeper(dir, proc.free_port(), 1, config=zk.ZkConfig(secure_port=0, tls=tls))
    try:
        try:
            zk.wait_for(members, timeout=60)
            _wait_tls_port(members[0], certs)
        except SandboxError as exc:
            pytest.fail(f"{exc}\n{proc.tail(Path(members[0].log), 40)}", pytrace=False)
        yield members[0], certs
    finally:
        zk.stop_zookeeper(members)


def _wait_tls_port(member, certs, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((member.host, member.secure_port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the TLS port never opened")


def tls_args(certs, *, ca=True, cert=True) -> list[str]:
    out = ["--zk-tls"]
    if ca:
        out += ["--zk-ca", str(certs.ca)]
    if cert:
        out += ["--zk-cert", str(certs.cert), "--zk-key", str(certs.key)]
    return out


def test_zk_tls_with_ca_and_client_certificate_reads(zk_tls, kazoo_client):
    member, certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/",
           "CONFIG_SERVICE_URL": "http://127.0.0.1:9"}
    res = run_cli("list", "--source", "zk", "-o", "json", *tls_args(certs), env=env)
    assert res.exit_code == 0, res


def test_zk_tls_options_from_env_and_context(zk_tls):
    member, certs = zk_tls
    hosts = f"{member.host}:{member.secure_port}"
    env = {"ZOOKEEPER_HOSTS": hosts, "ZOOKEEPER_BASE_PATH": "/", "CONFIG_SERVICE_URL": "http://127.0.0.1:9",
           "REGCTL_ZK_CA": str(certs.ca), "REGCTL_ZK_CERT": str(certs.cert), "REGCTL_ZK_KEY": str(certs.key)}
    res = run_cli("list", "--source", "zk", "-o", "json", env=env)
    assert res.exit_code == 0, res
    cfg = Path(os.environ["REGCTL_CONFIG"])
    cfg.write_text(yaml.safe_dump({"current-context": "tls", "contexts": {"tls": {
        "zk_hosts": hosts, "zk_base": "/", "zk_ca": str(certs.ca), "zk_cert": str(certs.cert),
        "zk_key": str(certs.key)}}}))
    res = run_cli("list", "--source", "zk", "-o", "json", env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    assert res.exit_code == 0, res


def test_zk_tls_without_the_ca_is_one_line_naming_tls(zk_tls):
    member, certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/"}
    res = run_cli("list", "--source", "zk", "--timeout", "2", *tls_args(certs, ca=False), env=env)
    line = assert_one_line_error(res, 3)
    assert "TLS" in line and "--zk-ca" in line, line


def test_zk_tls_without_a_client_certificate_fails_in_one_line(zk_tls):
    member, certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/"}
    res = run_cli("list", "--source", "zk", "--timeout", "2", *tls_args(certs, cert=False), env=env)
    line = assert_one_line_error(res, 3)
    assert "ZooKeeper" in line, line


def test_plain_client_against_the_tls_port_hints_at_zk_tls(zk_tls):
    member, _certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/"}
    res = run_cli("list", "--source", "zk", "--timeout", "2", env=env)
    line = assert_one_line_error(res, 3)
    assert "--zk-tls" in line, line


def test_zk_tls_insecure_skips_verification_and_warns(zk_tls):
    member, certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/",
           "CONFIG_SERVICE_URL": "http://127.0.0.1:9"}
    res = run_cli("list", "--source", "zk", "-o", "json", "--insecure", *tls_args(certs, ca=False), env=env)
    assert res.exit_code == 0, res
    assert "verification is OFF for ZooKeeper" in res.stderr


def test_zk_cert_without_key_is_a_usage_error(zk_tls):
    member, certs = zk_tls
    res = run_cli("list", "--source", "zk", "--zk", f"{member.host}:{member.secure_port}", "--zk-cert", certs.cert)
    assert "--zk-key" in assert_one_line_error(res, 2)


def test_doctor_reaches_a_tls_only_member_through_a_tls_session(zk_tls):
    member, certs = zk_tls
    env = {"ZOOKEEPER_HOSTS": f"{member.host}:{member.secure_port}", "ZOOKEEPER_BASE_PATH": "/",
           "CONFIG_SERVICE_URL": "http://127.0.0.1:9"}
    res = run_cli("doctor", "zookeeper", "-o", "json", *tls_args(certs), env=env)
    rows = {c["name"]: c for c in res.json["checks"]}
    assert rows["zookeeper.session"]["status"] == "pass", rows["zookeeper.session"]
    assert rows["zookeeper.quorum"]["status"] == "pass", rows["zookeeper.quorum"]
    plain = run_cli("doctor", "zookeeper", "-o", "json", env=env)
    assert {c["name"]: c for c in plain.json["checks"]}["zookeeper.session"]["status"] == "fail"
