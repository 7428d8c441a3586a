import pytest

from regctl.errors import UsageError
from regctl.names import (normalize_base_path, parse_port, parse_zk_hosts, url_segment, validate_instance_id,
                          validate_service_name, validate_status, validate_url, zk_join)


@pytest.mark.parametrize("name", ["asr-service", "a", "svc_1.v2", "ünïcode-svc", "x" * 200])
def test_valid_service_names(name):
    assert validate_service_name(name) == name


@pytest.mark.parametrize("name,why", [
    ("", "empty"), (".", "not allowed"), ("..", "not allowed"), ("a/b", "'/'"), ("a\nb", "control"),
    ("a\x00b", "control"), (" a", "whitespace"), ("x" * 201, "limit"), ("zookeeper", "reserved"),
])
def test_invalid_service_names(name, why):
    with pytest.raises(UsageError) as exc:
        validate_service_name(name)
    assert why in str(exc.value)


def test_instance_id_rules_match_segments():
    assert validate_instance_id("asr-service-1") == "asr-service-1"
    with pytest.raises(UsageError):
        validate_instance_id("../x")


def test_zk_join_cannot_escape_base():
    assert zk_join("/services", "asr", "instances", "i-1") == "/services/asr/instances/i-1"
    for bad in ("..", "a/../../b", "/etc"):
        with pytest.raises(UsageError):
            zk_join("/services", bad)


def test_base_path_normalized_and_checked():
    assert normalize_base_path("services/") == "/services"
    assert normalize_base_path("/") == "/"
    for bad in ("/a/../b", "/a//b", ""):
        with pytest.raises(UsageError):
            normalize_base_path(bad)


def test_parse_zk_hosts_ensemble_chroot_ipv6_default_port():
    h = parse_zk_hosts("zk1:2181, zk2 ,[::1]:2182/apps/reg")
    assert h.members == (("zk1", 2181), ("zk2", 2181), ("::1", 2182))
    assert h.chroot == "/apps/reg"
    assert h.connection_string() == "zk1:2181,zk2:2181,[::1]:2182/apps/reg"


@pytest.mark.parametrize("bad", ["", "h:abc", "h:70000", "a,,b", "::1", "[::1", "h:2181/../x"])
def test_parse_zk_hosts_rejects(bad):
    with pytest.raises(UsageError):
        parse_zk_hosts(bad)


def test_url_validation():
    assert validate_url("http://h:8090/x") == "http://h:8090/x"
    for bad in ("ftp://h", "http://", "http://h:99999", "h:8090", "http://h x", ""):
        with pytest.raises(UsageError):
            validate_url(bad)


def test_status_and_port_and_segment_encoding():
    assert validate_status("healthy") == "healthy"
    with pytest.raises(UsageError):
        validate_status("HEALTHY")
    assert parse_port("8090") == 8090
    with pytest.raises(UsageError):
        parse_port("0")
    assert url_segment("a b/c?d") == "a%20b%2Fc%3Fd"
