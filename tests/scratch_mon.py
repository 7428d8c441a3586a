from tests.helpers import run_cli
from tests.test_cli_health import endpoints, reg  # noqa

def test_show(make_registry, endpoints):
    slow = make_registry(health_timeout=3.0)
    reg(slow, "s", "s-1", endpoints["hang"])
    reg(slow, "t", "t-1", endpoints["ok"])
    res = run_cli("health", "s", "t", "--server", "--timeout", "0.5", "--server-timeout", "1", "-o", "wide", env=slow.env)
    print(res.stdout); print(res.stderr)
