"""Shell completion: a TAB's cost when the registry answers, when it is down, and when it hangs.

Each row is the median wall time of one completion request (what a TAB runs: ``regctl``
with ``_REGCTL_COMPLETE=bash`` and the command line), uncached, next to ``python -c pass``
and a TAB that needs no registry (a command name). The goal: a TAB with the registry down
(refused, or accepting and never answering) ends within the lookup budget (0.5 s) of
the command-name TAB, and under 1 s. Names are never cached between runs; the command
tree is (as after a user's first TAB), and its first build is shown separately.

    python bench/completion.py            # 11 rounds
    python bench/completion.py --quick    # 5 rounds
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile

from _common import args, child_env, free_port, median, ms, print_table, run_child, write_json, zookeeper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    a = args(__doc__.splitlines()[0])
    rounds = 5 if a.quick else 11
    py = sys.executable
    sys.path.insert(0, os.path.join(REPO, "src"))
    from regctl.http.api import RegistryApi
    from regctl.sandbox.registry.server import Identity, RegistryServer

    cache = tempfile.mkdtemp(prefix="regctl-bench-cache-")
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)
    hang = f"127.0.0.1:{blackhole.getsockname()[1]}"
    dead = f"127.0.0.1:{free_port()}"
    try:
        with zookeeper() as zk_hosts:
            server = RegistryServer(zk_hosts=zk_hosts, base_path="/bench/services", identity=Identity(self_url=None))
            server.start()
            try:
                with RegistryApi(server.url, timeout=5) as api:
                    for i in range(50):
                        api.register({"service_name": f"svc-{i:02d}", "service_url": f"http://svc-{i}:80",
                                      "health_check_url": None,
                                      "service_metadata": {"instance_id": f"svc-{i}-1", "status": "healthy"}})
                up_zk = {"CONFIG_SERVICE_URL": server.url, "ZOOKEEPER_HOSTS": zk_hosts,
                         "ZOOKEEPER_BASE_PATH": "/bench/services"}
                cases = {
                    "command": ("regctl ins", {}),
                    "zk": ("regctl inspect svc-1", up_zk),
                    "api": ("regctl inspect svc-1", {"CONFIG_SERVICE_URL": server.url}),
                    "zk_down_api_up": ("regctl inspect svc-1",
                                       {"CONFIG_SERVICE_URL": server.url, "ZOOKEEPER_HOSTS": dead}),
                    "down": ("regctl inspect svc-1", {"CONFIG_SERVICE_URL": f"http://{dead}",
                                                      "ZOOKEEPER_HOSTS": dead}),
                    "hangs": ("regctl inspect svc-1", {"CONFIG_SERVICE_URL": f"http://{hang}",
                                                       "ZOOKEEPER_HOSTS": hang}),
                }
                cmd = [py, "-m", "regctl"]
                envs = {k: child_env(_REGCTL_COMPLETE="bash", _REGCTL_LINE=line, _REGCTL_CUR=line.split(" ")[-1],
                                     XDG_CACHE_HOME=cache, **extra) for k, (line, extra) in cases.items()}
                times: dict = {k: [] for k in ["pass", *cases]}
                first = []
                for _ in range(3):  # the first TAB after an install builds the command tree
                    shutil.rmtree(cache, ignore_errors=True)
                    first.append(run_child(cmd, envs["command"])[0])
                for k in cases:  # warm the page cache and .pyc files
                    run_child(cmd, envs[k])
                for _ in range(rounds):
                    wall, _, _, _ = run_child([py, "-c", "pass"], child_env())
                    times["pass"].append(wall)
                    for k in cases:
                        names = os.path.join(cache, "regctl", "completion.json")
                        if os.path.exists(names):
                            os.unlink(names)  # names uncached every time; the command tree stays cached
                        wall, code, _, out = run_child(cmd, envs[k], stdout=None)
                        want_names = k in ("zk", "api", "zk_down_api_up")
                        if code != 0 or (b"svc-10" in out) != want_names:
                            print(f"completion {k}: exit {code}, answered {out[:200]!r}", file=sys.stderr)
                            return 1
                        times[k].append(wall)
            finally:
                server.stop()
    finally:
        blackhole.close()
        shutil.rmtree(cache, ignore_errors=True)
    med = {k: median(v) for k, v in times.items()}
    labels = {"command": "regctl ins<TAB> (no registry needed)",
              "zk": "regctl inspect svc-1<TAB>, names from ZooKeeper",
              "api": "regctl inspect svc-1<TAB>, names from the API",
              "zk_down_api_up": "  ZooKeeper refused, names from the API",
              "down": "  registry down (both refused)",
              "hangs": "  registry hangs (accepts, never answers)"}
    rows = [("python -c pass (baseline)", ms(med["pass"]), "1.00x"),
            ("first TAB after an install (builds the tree)", ms(median(first)), f"{median(first) / med['pass']:.2f}x")]
    figures = {"rounds": rounds, "pass_ms": med["pass"] * 1000}
    for k in cases:
        extra = med[k] - med["command"]
        note = f"{med[k] / med['pass']:.2f}x"
        if k != "command":
            note += f", command-name TAB + {ms(extra)}"
        rows.append((labels[k], ms(med[k]), note))
        figures[f"{k}_ms"] = med[k] * 1000
    print_table(f"completion, median of {rounds} interleaved uncached runs", rows)
    write_json(a.json, "completion", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
