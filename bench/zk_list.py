"""Bulk ZooKeeper reads: ``regctl list --source zk`` / ``inspect`` against plain kazoo baselines.

Starts its own ZooKeeper (regctl.sandbox.zookeeper) on a free loopback port. A child
process creates SERVICES x INSTANCES ephemeral instance nodes (kazoo transactions,
all in flight at once) and keeps its session open while the figures are taken.

Figures, every one a median of several runs in this same process and ZooKeeper:

* baseline "kazoo sync": get_children + get node by node (one round trip each);
* baseline "kazoo async": every get_children_async / get_async issued at once, then collected;
* regctl's ZooKeeper read phase: ``ZkReader.snapshot()`` (multi-read, the default) and the
  same reader forced onto the async fan-out (what it did before, and its fallback);
* regctl's core in process: snapshot + ``views.summarize`` + JSON of the list result;
* ``regctl list --source zk -o json`` and ``regctl inspect NAME --source zk -o json`` as
  subprocesses (``python -m regctl``), with the child's peak RSS (ru_maxrss).

    python bench/zk_list.py                   # 1,000 services x 10 instances
    python bench/zk_list.py --services 200 --quick
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _common import args, child_env, median, ms, print_table, run_child, write_json, zookeeper

BASE = "/bench/services"
PAYLOAD = {"status": "healthy", "version": "1.4.2", "region": "eu-west-1", "replicas": 3,
           "tags": ["gpu", "batch"]}


# ---------------------------------------------------------------------------- the data set (child process)

def hold(hosts: str, services: int, instances: int) -> int:
    """Child: create the data set with this session, print 'ready', keep the session until stdin closes."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=hosts, timeout=30)
    client.start(timeout=30)
    client.ensure_path(BASE)
    pending = []
    txn = client.transaction()
    ops = 0
    for s in range(services):
        name = f"svc-{s:05d}"
        svc = f"{BASE}/{name}"
        txn.create(svc, b"")
        txn.create(f"{svc}/instances", b"")
        for i in range(instances):
            iid = f"{name}-{i}"
            body = dict(PAYLOAD, instance_id=iid, service_url=f"http://10.0.{s % 250}.{i + 1}:8080",
                        health_check_url=f"http://10.0.{s % 250}.{i + 1}:8080/health")
            txn.create(f"{svc}/instances/{iid}", json.dumps(body).encode(), ephemeral=True)
        ops += 2 + instances
        if ops >= 500:
            pending.append(txn.commit_async())
            txn, ops = client.transaction(), 0
    if ops:
        pending.append(txn.commit_async())
    for p in pending:
        for r in p.get(timeout=120):
            if isinstance(r, Exception):
                print(f"create failed: {r!r}", file=sys.stderr)
                return 1
    print("ready", flush=True)
    sys.stdin.read()  # parent closes our stdin: done
    client.stop()
    client.close()
    return 0


#: ``regctl list`` as it read before the byte budget (same code otherwise): the same-run "before" figure
UNBOUNDED = ("import sys, regctl.zookeeper.reader as z; z._default_in_flight = lambda: None; from regctl.cli.app import main; "
             "sys.exit(main())")


# ---------------------------------------------------------------------------- baselines

def kazoo_sync(client) -> int:
    n = 0
    for name in client.get_children(BASE):
        base = f"{BASE}/{name}/instances"
        for iid in client.get_children(base):
            client.get(f"{base}/{iid}")
            n += 1
    return n


def kazoo_async(client) -> int:
    names = client.get_children(BASE)
    kids = [(f"{BASE}/{n}/instances", client.get_children_async(f"{BASE}/{n}/instances")) for n in names]
    datas = []
    for base, res in kids:
        for iid in res.get(timeout=60):
            datas.append(client.get_async(f"{base}/{iid}"))
    for d in datas:
        d.get(timeout=60)
    return len(datas)


# ---------------------------------------------------------------------------- main

def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--hold":
        return hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

    def extra(p):
        p.add_argument("--services", type=int, default=1000)
        p.add_argument("--instances", type=int, default=10)
        p.add_argument("--rounds", type=int, default=0, help="repetitions per figure (default 7, --quick 3)")
    a = args(__doc__.splitlines()[0], extra)
    rounds = a.rounds or (3 if a.quick else 7)
    total = a.services * a.instances
    figures: dict = {"services": a.services, "instances": total, "rounds": rounds}
    started = time.monotonic()

    with zookeeper() as hosts:
        holder = subprocess.Popen([sys.executable, __file__, "--hold", hosts, str(a.services), str(a.instances)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env())
        try:
            line = holder.stdout.readline().strip()  # type: ignore[union-attr]
            if line != "ready":
                print("the data set could not be created", file=sys.stderr)
                return 1
            figures["create_s"] = time.monotonic() - started
            run(a, hosts, rounds, figures)
        finally:
            try:
                holder.stdin.close()  # type: ignore[union-attr]
                holder.wait(timeout=15)
            except Exception:
                holder.kill()
                holder.wait()
    write_json(a.json, "zk_list", figures)
    return 0


def run(a, hosts: str, rounds: int, figures: dict) -> None:
    from kazoo.client import KazooClient

    from regctl.zookeeper import reader as zk_mod
    from regctl.views import summarize

    total = a.services * a.instances
    client = KazooClient(hosts=hosts, timeout=30)
    client.start(timeout=30)
    reader = zk_mod.ZkReader(hosts, BASE, timeout=30)
    reader.connect()
    fanout = zk_mod.ZkReader(hosts, BASE, timeout=30)
    fanout.connect()
    fanout.use_multi_read = False
    unbounded = zk_mod.ZkReader(hosts, BASE, timeout=30)
    unbounded.connect()
    unbounded.in_flight_bytes = None  # as before the byte budget: 1,000 a batch, every batch in flight

    def snap_multi():
        snap = reader.snapshot()
        assert sum(len(s.instances) for s in snap.services) == total, "multi-read lost instances"

    def snap_fanout():
        snap = fanout.snapshot()
        assert sum(len(s.instances) for s in snap.services) == total, "fan-out lost instances"

    def snap_unbounded():
        snap = unbounded.snapshot()
        assert sum(len(s.instances) for s in snap.services) == total, "unbounded multi-read lost instances"

    def core_list():
        snap = reader.snapshot()
        summaries = summarize(None, snap, None)
        return json.dumps({"services": [s.to_dict() for s in summaries],
                           "problems": [p.to_dict() for p in snap.all_problems()]})

    def inspect_one():
        reader.service("svc-00007")

    cases = {
        "kazoo_sync": lambda: kazoo_sync(client),
        "kazoo_async": lambda: kazoo_async(client),
        "snapshot_fanout": snap_fanout,
        "snapshot": snap_multi,
        "snapshot_unbounded": snap_unbounded,
        "core_list": core_list,
        "inspect_core": inspect_one,
        "kazoo_async_inspect": lambda: [r.get(timeout=30) for r in
                                        [client.get_async(f"{BASE}/svc-00007/instances/{i}") for i in
                                         client.get_children(f"{BASE}/svc-00007/instances")]],
    }
    sync_rounds = max(1, min(rounds, 3))
    times: dict[str, list[float]] = {k: [] for k in cases}
    for k, fn in cases.items():  # warm up: code paths, server caches
        fn()
    for r in range(rounds):
        for k, fn in cases.items():
            if k == "kazoo_sync" and r >= sync_rounds:
                continue
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: median(v) for k, v in times.items()}
    client.stop()
    client.close()
    reader.close()
    fanout.close()
    unbounded.close()

    env = child_env(ZOOKEEPER_HOSTS=hosts, ZOOKEEPER_BASE_PATH=BASE)
    cli = {"cli_list": [sys.executable, "-m", "regctl", "list", "--source", "zk", "-o", "json"],
           "cli_inspect": [sys.executable, "-m", "regctl", "inspect", "svc-00007", "--source", "zk", "-o", "json"],
           "cli_list_unbounded": [sys.executable, "-c", UNBOUNDED, "list", "--source", "zk", "-o", "json"],
           "cli_version": [sys.executable, "-m", "regctl", "--version"]}
    cli_times: dict[str, list[float]] = {k: [] for k in cli}
    rss: dict[str, int] = {k: 0 for k in cli}
    for _ in range(max(1, min(rounds, 5))):
        for k, cmd in cli.items():
            wall, code, _rss, out = run_child(cmd, env, stdout=None)
            if code != 0:
                raise SystemExit(f"{' '.join(cmd)} exited {code}")
            if k in ("cli_list", "cli_list_unbounded"):
                data = json.loads(out)
                got = sum(s.get("live_instances") or 0 for s in data["services"])
                assert got == total, f"regctl list saw {got} of {total} instances"
            cli_times[k].append(wall)
    for k, cmd in cli.items():  # peak RSS, measured apart (see _common._LAUNCHER)
        for _ in range(2):
            rss[k] = max(rss[k], run_child(cmd, env, rss=True)[2])
    for k, v in cli_times.items():
        med[k] = median(v)

    base_async = med["kazoo_async"]
    rows = [
        (f"kazoo sync, node by node ({total + a.services + 1} reads)", ms(med["kazoo_sync"]),
         f"{med['kazoo_sync'] / base_async:.2f}x of async"),
        ("kazoo async, all reads in flight (baseline)", ms(base_async), "1.00x"),
        ("regctl ZkReader.snapshot(), async fan-out", ms(med["snapshot_fanout"]),
         f"{med['snapshot_fanout'] / base_async:.2f}x"),
        ("regctl ZkReader.snapshot(), multi-read", ms(med["snapshot"]),
         f"{med['snapshot'] / base_async:.2f}x  = {base_async / med['snapshot']:.1f}x faster (goal >= 2x: "
         f"{'ok' if base_async / med['snapshot'] >= 2 else 'MISSED'})"),
        ("regctl snapshot, multi-read without the byte budget (before)", ms(med["snapshot_unbounded"]),
         f"budgeted / unbounded = {med['snapshot'] / med['snapshot_unbounded']:.2f}x"),
        ("regctl core list (snapshot+summarize+JSON)", ms(med["core_list"]),
         f"{med['core_list'] / base_async:.2f}x"),
        ("regctl core inspect (1 service)", ms(med["inspect_core"]),
         f"kazoo async for 1 service: {ms(med['kazoo_async_inspect']).strip()}"),
        ("python -m regctl --version (process floor)", ms(med["cli_version"]), ""),
        ("python -m regctl list --source zk -o json", ms(med["cli_list"]),
         f"{med['cli_list'] / med['cli_version']:.2f}x of --version"),
        ("regctl list --source zk without the byte budget (before)", ms(med["cli_list_unbounded"]),
         f"with / without = {med['cli_list'] / med['cli_list_unbounded']:.2f}x (goal <= 1.10x: "
         f"{'ok' if med['cli_list'] <= 1.10 * med['cli_list_unbounded'] else 'MISSED'})"),
        ("python -m regctl inspect NAME --source zk", ms(med["cli_inspect"]),
         f"{med['cli_inspect'] / med['cli_version']:.2f}x of --version"),
        ("peak RSS of regctl list (ru_maxrss)", f"{rss['cli_list'] / 1024:.1f} MB",
         f"goal < 150 MB: {'ok' if rss['cli_list'] < 150 * 1024 else 'MISSED'}"),
        ("peak RSS of regctl --version", f"{rss['cli_version'] / 1024:.1f} MB", ""),
    ]
    print_table(f"ZooKeeper reads: {a.services} services x {a.instances} instances = {total} nodes; "
                f"median of {rounds} (kazoo sync: {sync_rounds}, CLI: {len(cli_times['cli_list'])})", rows)
    figures.update({f"{k}_ms": v * 1000 for k, v in med.items()})
    figures["speedup_vs_async"] = base_async / med["snapshot"]
    figures["list_maxrss_mb"] = rss["cli_list"] / 1024
    figures["inspect_maxrss_mb"] = rss["cli_inspect"] / 1024
    figures["version_maxrss_mb"] = rss["cli_version"] / 1024


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
