"""doctor's time bounds, as ratios measured in this same run.

Starts its own ZooKeeper and an in-process sandbox registry (earlier generation) and times
``python -m regctl doctor`` as a subprocess:

* everything black-holed (a Config Service that accepts and never answers, a ZooKeeper port that
  accepts and never answers), ``--timeout T``: the whole run against T (every check has a deadline
  of 1.5 T + 0.5 s, and they all run at once), next to ``regctl --version`` (startup alone);
* a healthy earlier-generation registry: ``doctor config`` against ``doctor config --skip
  config.generation`` (what the generation probe adds for the earlier one: two small 404s);
* the same registry, ``doctor --all`` against ``doctor config zookeeper`` (what the cause and
  hygiene checks add over a registry of SERVICES services).

    python bench/doctor.py
    python bench/doctor.py --quick
"""

from __future__ import annotations

import os
import socket
import sys

from _common import args, child_env, median, ms, print_table, run_child, write_json, zookeeper


def main() -> int:
    def extra(p):
        p.add_argument("--timeout", type=float, default=2.0)
        p.add_argument("--services", type=int, default=100)
    a = args(__doc__.splitlines()[0], extra)
    rounds = 3 if a.quick else 5
    figures: dict = {"timeout": a.timeout, "services": a.services, "rounds": rounds}

    import httpx

    from regctl.sandbox.registry.server import Identity, RegistryServer

    holes = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(256)  # accepts, never answers
        holes.append(s)
    cfg_hole, zk_hole = (f"127.0.0.1:{s.getsockname()[1]}" for s in holes)

    def walls(cmd: list, env: dict, ok=(0, 1)) -> float:
        out = []
        for _ in range(rounds):
            wall, code, _rss, _stdout = run_child([sys.executable, "-m", "regctl", *cmd], env, timeout=300)
            if code not in ok:
                raise SystemExit(f"regctl {' '.join(cmd)} exited {code}")
            out.append(wall)
        return median(out)

    med = {}
    try:
        base_env = child_env()
        med["version"] = walls(["--version"], base_env, ok=(0,))
        hole_env = child_env(CONFIG_SERVICE_URL=f"http://{cfg_hole}", ZOOKEEPER_HOSTS=zk_hole,
                             SERVICE_NAME="asr-service", SERVICE_PORT="8090")
        med["blackholed"] = walls(["doctor", "--timeout", f"{a.timeout:g}"], hole_env)
        with zookeeper() as hosts:
            srv = RegistryServer(zk_hosts=hosts, base_path="/bench-doctor/services", identity=Identity(self_url=None))
            srv.start()
            try:
                with httpx.Client(base_url=srv.url + "/api/v1/registry", timeout=30, trust_env=False) as c:
                    for i in range(a.services):
                        c.post("/register", json={"service_name": f"svc-{i:04d}", "service_url": srv.url,
                                                  "health_check_url": srv.url + "/health",
                                                  "service_metadata": {"instance_id": f"svc-{i:04d}-0",
                                                                       "status": "healthy"}})
                env = child_env(CONFIG_SERVICE_URL=srv.url, ZOOKEEPER_HOSTS=hosts,
                                ZOOKEEPER_BASE_PATH="/bench-doctor/services")
                med["config_skip_gen"] = walls(["doctor", "config", "--skip", "config.generation"], env)
                med["config"] = walls(["doctor", "config"], env)
                med["config_zk"] = walls(["doctor", "config", "zookeeper"], env)
                med["all"] = walls(["doctor", "--all"], env)
            finally:
                srv.stop()
    finally:
        for s in holes:
            s.close()

    bound = 1.5 * a.timeout + 0.5
    rows = [
        ("regctl --version (startup alone)", ms(med["version"]), ""),
        (f"doctor, everything black-holed, --timeout {a.timeout:g}", ms(med["blackholed"]),
         f"{med['blackholed'] / a.timeout:.2f}x --timeout (check deadline {bound / a.timeout:.2f}x)"),
        ("doctor config --skip config.generation (earlier generation, baseline)", ms(med["config_skip_gen"]),
         "1.00x"),
        ("doctor config (+ the generation probe)", ms(med["config"]),
         f"{med['config'] / med['config_skip_gen']:.2f}x the baseline"),
        ("doctor config zookeeper", ms(med["config_zk"]), ""),
        (f"doctor --all ({a.services} services: causes + hygiene + probes)", ms(med["all"]),
         f"{med['all'] / med['config_zk']:.2f}x config+zookeeper"),
    ]
    print_table(f"doctor, median of {rounds}", rows)
    figures.update({f"{k}_ms": v * 1000 for k, v in med.items()})
    figures["blackholed_over_timeout"] = med["blackholed"] / a.timeout
    figures["generation_probe_ratio"] = med["config"] / med["config_skip_gen"]
    figures["all_over_config_zk"] = med["all"] / med["config_zk"]
    write_json(a.json, "doctor", figures)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
