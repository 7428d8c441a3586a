import pytest

from regctl.errors import UsageError
from regctl.settings import DEFAULT_CONFIG_URL, resolve


def test_defaults():
    s = resolve({}, env={})
    assert s.endpoint.config_url == DEFAULT_CONFIG_URL
    assert s.endpoint.zk_hosts is None and not s.endpoint.zk_configured
    assert s.endpoint.zk_base == "/services" and s.endpoint.timeout == 5.0 and s.output == "table"
    assert s.sources["config_url"] == "default"


def test_flag_beats_env_beats_context_beats_default():
    env = {"CONFIG_SERVICE_URL": "http://env:1", "ZOOKEEPER_HOSTS": "envzk:2181", "REGCTL_TIMEOUT": "7"}
    ctx = {"config_url": "http://ctx:1", "zk_hosts": "ctxzk", "timeout": 9, "zk_base": "/ctx"}
    s = resolve({"config_url": "http://flag:1/"}, env=env, context=ctx, context_name="dev")
    assert s.endpoint.config_url == "http://flag:1" and s.sources["config_url"] == "flag"
    assert s.endpoint.zk_hosts == "envzk:2181" and s.sources["zk_hosts"] == "env"
    assert s.endpoint.timeout == 7.0 and s.sources["timeout"] == "env"
    assert s.endpoint.zk_base == "/ctx" and s.sources["zk_base"] == "context"
    assert s.output == "table" and s.sources["output"] == "default"


def test_empty_env_value_counts_as_unset():
    s = resolve({}, env={"CONFIG_SERVICE_URL": "", "ZOOKEEPER_HOSTS": ""})
    assert s.endpoint.config_url == DEFAULT_CONFIG_URL and s.endpoint.zk_hosts is None


def test_no_color_flag_and_env():
    assert resolve({"no_color": True}, env={}).color is False
    assert resolve({}, env={"NO_COLOR": "1"}).color is False
    assert resolve({}, env={}).color is None


@pytest.mark.parametrize("flags,env,where", [
    ({"config_url": "config-service:8082"}, {}, "--config-url"),
    ({}, {"CONFIG_SERVICE_URL": "ftp://x"}, "CONFIG_SERVICE_URL"),
    ({"zk_hosts": "h:notaport"}, {}, "--zk"),
    ({}, {"ZOOKEEPER_BASE_PATH": "/a/../b"}, "ZOOKEEPER_BASE_PATH"),
    ({"timeout": 0}, {}, "--timeout"),
    ({"output": "xml"}, {}, "--output"),
])
def test_invalid_values_name_their_origin(flags, env, where):
    with pytest.raises(UsageError) as exc:
        resolve(flags, env=env)
    assert where in str(exc.value)


def test_repr_redacts_secret_headers():
    s = resolve({}, env={}, context={"headers": {"Authorization": "Bearer s3cret", "X-Team": "ops"}})
    assert "s3cret" not in repr(s)
    assert s.redacted()["headers"] == {"Authorization": "***", "X-Team": "***"}  # every header value


def test_the_endpoint_builds_the_clients_and_never_shows_a_secret():
    import pytest

    from regctl.errors import UsageError
    from regctl.settings import Endpoint

    e = resolve({"config_url": "http://user:pw@cs:8082", "headers": ["Authorization: Bearer s3cret"],
                 "timeout": 2.5}, env={}).endpoint
    assert isinstance(e, Endpoint) and not e.zk_configured
    assert "s3cret" not in repr(e) and "pw@" not in repr(e) and "***" in repr(e)
    assert {"s3cret", "pw"} <= set(e.secret_values())
    api = e.api()
    try:
        assert api.base_url.startswith("http://user:pw@cs:8082") and api.timeout == 2.5
    finally:
        api.close()
    with pytest.raises(UsageError) as err:
        e.zk_reader()
    assert "zk_hosts=HOST:PORT" in str(err.value)  # the library's word; the CLI says --zk
    reader = resolve({"zk_hosts": "127.0.0.1:1", "zk_base": "/b"}, env={}).endpoint.zk_reader()
    assert reader.base_path == "/b"
