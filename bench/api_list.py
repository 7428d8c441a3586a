"""API reads: ``regctl list --source api`` over N services, concurrent vs sequential requests.

Starts its own ZooKeeper and the project's contract registry
(``python -m regctl.sandbox.registry``) as a subprocess on a free loopback port, registers
SERVICES services (one instance each) through the API, then times, in this same run:

* baseline: GET /services, then GET /services/NAME one after another over one pooled client;
* ``RegistryApi.map`` (what ``regctl list --source api`` does) at several concurrency limits;
* ``python -m regctl list --source api -o json`` as a subprocess.

The registry answers GET /services/NAME from its cache ("Redis") once warm: the first
round (cold) makes it read ZooKeeper per request, later rounds do not. The server is the
stdlib ThreadingHTTPServer (a thread per connection, GIL-bound): with 2 cores it, not
regctl, is the bottleneck once a few requests are in flight.

    python bench/api_list.py
    python bench/api_list.py --services 200 --quick
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _common import args, child_env, free_port, median, ms, print_table, run_child, write_json, zookeeper

BASE = "/bench-api/services"


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"registry at {url} did not come up")


def main() -> int:
    def extra(p):
        p.add_argument("--services", type=int, default=1000)
        p.add_argument("--rounds", type=int, default=0, help="repetitions per figure (default 5, --quick 3)")
    a = args(__doc__.splitlines()[0], extra)
    rounds = a.rounds or (3 if a.quick else 5)
    figures: dict = {"services": a.services, "rounds": rounds}

    from regctl.http import api as api_mod
    from regctl.http.api import RegistryApi

    with zookeeper() as hosts:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "regctl.sandbox.registry", "--port", str(port), "--zk", hosts,
                                   "--base", BASE], env=child_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            wait_http(url)
            with RegistryApi(url, timeout=30) as api:
                payloads = [{"service_name": f"svc-{i:05d}", "service_url": f"http://10.1.{i % 250}.1:8080",
                             "health_check_url": f"http://10.1.{i % 250}.1:8080/health",
                             "service_metadata": {"instance_id": f"svc-{i:05d}-0", "status": "healthy"}}
                            for i in range(a.services)]
                t = time.perf_counter()
                api.map([api_mod.register_call(p) for p in payloads], concurrency=8)
                figures["register_s"] = time.perf_counter() - t
                names = [r.service_name for r in api.list_services()]
                assert len(names) >= a.services, names[:5]

                def sequential():
                    rows = api.list_services()
                    return [api.instances(r.service_name) for r in rows]

                def concurrent(c):
                    def go():
                        rows = api.list_services()
                        return api.map([api_mod.instances_call(r.service_name) for r in rows], concurrency=c,
                                       return_exceptions=True)
                    return go

                # cold: the registry reads ZooKeeper for every service (its cache is empty after registering)
                t = time.perf_counter()
                out = concurrent(16)()
                figures["cold_map16_ms"] = (time.perf_counter() - t) * 1000
                assert not [r for r in out if isinstance(r, Exception)]
                levels = [1, 4, 8, 16, 32, 64]
                cases = {"sequential": sequential, **{f"map{c}": concurrent(c) for c in levels}}
                times: dict[str, list[float]] = {k: [] for k in cases}
                for _ in range(rounds):
                    for k, fn in cases.items():
                        t = time.perf_counter()
                        fn()
                        times[k].append(time.perf_counter() - t)
                med = {k: median(v) for k, v in times.items()}

            env = child_env(CONFIG_SERVICE_URL=url)
            cmd = [sys.executable, "-m", "regctl", "list", "--source", "api", "-o", "json"]
            cli = []
            for _ in range(min(rounds, 3)):
                wall, code, _rss, out = run_child(cmd, env, stdout=None)
                if code != 0:
                    raise SystemExit(f"{' '.join(cmd)} exited {code}")
                assert len(json.loads(out)["services"]) >= a.services
                cli.append(wall)
            med["cli_list"] = median(cli)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    base = med["sequential"]
    n = a.services + 1
    rows = [(f"sequential, one pooled client ({n} requests, baseline)", ms(base),
             f"1.00x  ({base / n * 1e6:.0f} us/request)")]
    for c in levels:
        k = f"map{c}"
        rows.append((f"RegistryApi.map, concurrency {c}" + ("  <- regctl's setting" if c == 16 else ""),
                     ms(med[k]), f"{base / med[k]:.2f}x faster"))
    rows.append(("cold registry cache, concurrency 16 (first round)", ms(figures["cold_map16_ms"] / 1000), ""))
    rows.append(("python -m regctl list --source api -o json", ms(med["cli_list"]), ""))
    print_table(f"API reads: {a.services} services, warm registry cache, median of {rounds}", rows)
    figures.update({f"{k}_ms": v * 1000 for k, v in med.items()})
    figures["speedup_map16"] = base / med["map16"]
    write_json(a.json, "api_list", figures)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
