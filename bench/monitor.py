"""The server's view: what the monitor columns cost, and server health calls run per service at once.

Starts its own ZooKeeper and two in-process sandbox registries (earlier and later generation,
monitor idle) and times, in this same run, ``python -m regctl`` as a subprocess:

* earlier generation, SERVICES services: ``list --source api`` (baseline) vs ``list --source api -o wide``
  (the generation probe: two small 404s, nothing per service);
* later generation: the same pair (``-o wide`` reads one monitor verdict per service, concurrently);
* later generation, HANGING services with one hanging instance each, the server's health call set to
  3 tries of 1 s with 0.5 s and 1 s back-off (4.5 s per service): ``health --all --server --timeout 1``
  against the sum of the server's per-service time (what asking one service after another would take).

    python bench/monitor.py
    python bench/monitor.py --services 100 --quick
"""

from __future__ import annotations

import json
import os
import socket
import sys

from _common import args, child_env, median, ms, print_table, run_child, write_json, zookeeper

PER_SERVICE_S = 3 * 1.0 + 0.5 + 1.0


def main() -> int:
    def extra(p):
        p.add_argument("--services", type=int, default=200)
        p.add_argument("--hanging", type=int, default=8)
    a = args(__doc__.splitlines()[0], extra)
    rounds = 3 if a.quick else 5
    figures: dict = {"services": a.services, "hanging": a.hanging, "rounds": rounds}

    import httpx

    from regctl.sandbox.registry.server import Behaviour, Identity, RegistryServer

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(256)  # accepts, never answers
    hang_url = f"http://127.0.0.1:{hang.getsockname()[1]}"
    with zookeeper() as hosts:
        servers = {}
        try:
            for gen in ("earlier", "later"):
                kw = {"monitor_interval": 3600.0, "probe_timeout": 1.0, "retry_delays": (0.5, 1.0)} \
                    if gen == "later" else {}
                srv = RegistryServer(zk_hosts=hosts, base_path=f"/bench-monitor-{gen}/services",
                                     identity=Identity(self_url=None), behaviour=Behaviour(gen, **kw))
                srv.start()
                servers[gen] = srv
                with httpx.Client(base_url=srv.url + "/api/v1/registry", timeout=30, trust_env=False) as c:
                    for i in range(a.services):
                        c.post("/register", json={"service_name": f"svc-{i:04d}",
                                                  "service_url": f"http://10.9.{i % 250}.1:8080",
                                                  "service_metadata": {"instance_id": f"svc-{i:04d}-0",
                                                                       "status": "healthy"}})
            med = {}
            for gen, srv in servers.items():
                env = child_env(CONFIG_SERVICE_URL=srv.url)
                for label, extra_args in (("table", []), ("wide", ["-o", "wide"])):
                    walls = []
                    for _ in range(rounds):
                        wall, code, _rss, _out = run_child([sys.executable, "-m", "regctl", "list", "--source",
                                                            "api", *extra_args], env)
                        if code != 0:
                            raise SystemExit(f"list {extra_args} on the {gen} generation exited {code}")
                        walls.append(wall)
                    med[f"{gen}_{label}"] = median(walls)

            slow_base = "/bench-monitor-slow/services"
            slow = RegistryServer(zk_hosts=hosts, base_path=slow_base, identity=Identity(self_url=None),
                                  behaviour=Behaviour("later", monitor_interval=3600.0, probe_timeout=1.0,
                                                      retry_delays=(0.5, 1.0)))
            slow.start()
            servers["slow"] = slow
            with httpx.Client(base_url=slow.url + "/api/v1/registry", timeout=30, trust_env=False) as c:
                for i in range(a.hanging):
                    c.post("/register", json={"service_name": f"hang-{i:02d}", "service_url": hang_url,
                                              "health_check_url": hang_url + "/health",
                                              "service_metadata": {"instance_id": f"hang-{i:02d}-0",
                                                                   "status": "healthy"}})
            env = child_env(CONFIG_SERVICE_URL=slow.url)
            wall, code, _rss, out = run_child([sys.executable, "-m", "regctl", "health", "--all", "--server",
                                               "--timeout", "1", "-o", "json"], env, stdout=None, timeout=300)
            doc = json.loads(out)
            verdicts = [r["server_status"] for r in doc["server"]]
            if verdicts.count("unhealthy") != a.hanging:
                raise SystemExit(f"expected the server's verdict for every hanging service, got {verdicts}")
            if code != 1:  # 1: regctl's own probes found the instances unhealthy, as they are
                raise SystemExit(f"health --server exited {code}")
            med["health_server"] = wall
        finally:
            for srv in servers.values():
                srv.stop()
            hang.close()

    rows = [
        (f"earlier generation: list --source api ({a.services} services, baseline)", ms(med["earlier_table"]),
         "1.00x"),
        ("earlier generation: list --source api -o wide (+ generation probe)", ms(med["earlier_wide"]),
         f"{med['earlier_wide'] / med['earlier_table']:.2f}x the baseline"),
        ("later generation: list --source api", ms(med["later_table"]), ""),
        (f"later generation: list --source api -o wide (+ {a.services} monitor reads)", ms(med["later_wide"]),
         f"{med['later_wide'] / med['later_table']:.2f}x the plain list"),
        (f"health --all --server, {a.hanging} services with a hanging instance", ms(med["health_server"]),
         f"{a.hanging * PER_SERVICE_S / med['health_server']:.1f}x faster than one service after another "
         f"({a.hanging} x {PER_SERVICE_S:g} s)"),
    ]
    print_table(f"the server's view, median of {rounds} (health: one run)", rows)
    figures.update({f"{k}_ms": v * 1000 for k, v in med.items()})
    figures["earlier_wide_ratio"] = med["earlier_wide"] / med["earlier_table"]
    figures["later_wide_ratio"] = med["later_wide"] / med["later_table"]
    figures["health_server_speedup"] = a.hanging * PER_SERVICE_S / med["health_server"]
    write_json(a.json, "monitor", figures)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
