"""Import after a crash-restart, against the real Config Service: ``regctl import`` vs a plain loop.

Starts its own ZooKeeper (``srvr`` the only four-letter word, as deployments run), a
PostgreSQL cluster, a Redis and one real Config Service (the upstream source, run as
the suite runs it: ``tests/realservice.py``), registers INSTANCES instances of SERVICES
services through its API, exports them with ``regctl export``, then measures, rounds
alternating which goes first:

* ``regctl import FILE --yes -o json`` **as a subprocess** (``python -m regctl``, what an
  operator runs: start-up, plan, writes, report included);
* baseline: a plain loop over one pooled httpx client, ``restore.CONCURRENCY`` (8) threads,
  each item ``POST /deregister`` then ``POST /register`` with the file's payloads: the same
  calls the import makes, and nothing else.

Before every measured run the service is killed with SIGKILL and started again, so
every node (its own included, rewritten in place) belongs to the dead session and both
sides have the same work: deregister and register all INSTANCES + 1 nodes. After
every run the bench checks in ZooKeeper that each instance is live under the new
session (a side that did less would look faster). The session timeout is 40 s (the
most a default ZooKeeper grants), so no old node expires during a run.

Then ``regctl import FILE --dry-run`` (no writes) shows the fixed part: start-up, reading
the file and ZooKeeper, the plan. With ``--profile`` one more import runs in process (``regctl.cli.app.main``) under
cProfile and the top functions by cumulative time are printed.

    python bench/import_real.py                       # earlier generation, 1,000 instances, 3 rounds
    python bench/import_real.py --generation later --quick
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, args, child_env, median, ms, print_table, write_json, zookeeper

SESSION = 40  # seconds: ZooKeeper's default maximum (20 x tickTime); a run must not outlast it


def register_all(cs, wanted: list[tuple[str, str]]) -> None:
    """Register through the API, each service's first instance alone (its row is select-then-insert)."""
    import httpx

    def one(client, service: str, iid: str) -> None:
        body = {"service_name": service, "service_url": f"http://{service}.internal:8080",
                "health_check_url": f"http://{service}.internal:8080/health",
                "service_metadata": {"instance_id": iid, "status": "healthy", "version": "1.4.2",
                                     "region": "eu-1"}}
        r = client.post(cs.api + "/register", json=body)
        if r.status_code != 201:
            raise SystemExit(f"register {service}/{iid}: {r.status_code} {r.text[:200]}")

    with httpx.Client(timeout=30, trust_env=False) as client:
        firsts: dict[str, str] = {}
        for s, i in wanted:
            firsts.setdefault(s, i)
        for s, i in firsts.items():
            one(client, s, i)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda si: one(client, *si), [(s, i) for s, i in wanted if firsts[s] != i]))


def owners(zk, base: str) -> dict[tuple[str, str], int]:
    """(service, id) -> ephemeralOwner of every instance node under ``base`` (async kazoo reads)."""
    out: dict = {}
    dirs = {s: zk.get_children_async(f"{base}/{s}/instances") for s in zk.get_children(base)}
    stats = {}
    for s, a in dirs.items():
        try:
            ids = a.get()
        except Exception:
            continue
        for i in ids:
            stats[(s, i)] = zk.exists_async(f"{base}/{s}/instances/{i}")
    for k, a in stats.items():
        st = a.get()
        if st is not None:
            out[k] = st.ephemeralOwner
    return out


def crash_restart(cs, zk) -> int:
    """kill -9 and start again; return the dead session that owns every node now."""
    from tests.realservice import wait_until

    was = zk.exists(cs.own_node)
    cs.kill9()
    cs.start()
    # /live and the node's existence can come before its start-up rewrite: wait for that write
    st = wait_until(lambda: (lambda s: s if s is not None and s.version > was.version else None)(
        zk.exists(cs.own_node)), 30, 0.05, "the Config Service's start-up rewrite of its own node")
    if st.ephemeralOwner != was.ephemeralOwner:
        raise SystemExit(f"unexpected own node after the restart: {st}")
    return was.ephemeralOwner


def check_restored(zk, cs, wanted: list[tuple[str, str]], dead: int, what: str) -> None:
    own = owners(zk, cs.base_path)
    keys = wanted + [("config-service", cs.instance_id)]
    missing = [k for k in keys if k not in own]
    sessions = {own[k] for k in keys if k in own}
    if missing or len(sessions) != 1 or dead in sessions:
        raise SystemExit(f"{what}: not every node restored under one new session "
                         f"(missing {len(missing)}, sessions {[hex(s) for s in sessions]})")


def plain_loop(url: str, payloads: list[dict], concurrency: int) -> tuple[float, float]:
    """The baseline: deregister then register each payload, ``concurrency`` at a time, one pooled client.

    Returns (wall seconds, CPU seconds of this process meanwhile)."""
    import httpx

    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    with httpx.Client(base_url=url + "/api/v1/registry", timeout=30, limits=limits, trust_env=False) as client:
        def one(p: dict) -> None:
            r = client.post("/deregister", params={"service_name": p["service_name"],
                                                   "instance_id": p["service_metadata"]["instance_id"]})
            if r.status_code != 200:
                raise SystemExit(f"deregister: {r.status_code} {r.text[:200]}")
            r = client.post("/register", json=p)
            if r.status_code != 201:
                raise SystemExit(f"register: {r.status_code} {r.text[:200]}")

        t, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, payloads))
        return time.perf_counter() - t, time.process_time() - cpu


def run_import(cmd: list[str], env: dict) -> tuple[float, dict, float]:
    """(wall seconds, the JSON report, the child's CPU seconds)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, json.loads(proc.stdout), cpu


def profile_import(cs, backup: Path, top: int = 25) -> None:
    """One import in process under cProfile (not timed against anything)."""
    import cProfile
    import io
    import pstats
    from contextlib import redirect_stdout

    from regctl.cli.app import main as regctl_main

    saved = {k: os.environ.get(k) for k in cs.env}
    os.environ.update(cs.env)
    prof = cProfile.Profile()
    try:
        with redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            prof.enable()
            code = regctl_main(["import", str(backup), "--yes", "-o", "json"])
            prof.disable()
            wall = time.perf_counter() - t
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    print(f"\n== cProfile of one in-process import (exit {code}, {ms(wall)}; threads' time shows as waits)")
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(top)
    print("\n".join(s.getvalue().splitlines()[:top + 12]))


def main() -> int:
    def extra(p):
        p.add_argument("--generation", choices=("earlier", "later"), default="earlier")
        p.add_argument("--instances", type=int, default=1000)
        p.add_argument("--services", type=int, default=20)
        p.add_argument("--rounds", type=int, default=0, help="runs of each side (default 3, --quick 2)")
        p.add_argument("--profile", action="store_true", help="also profile one in-process import")
    a = args(__doc__.splitlines()[0], extra)
    rounds = a.rounds or (2 if a.quick else 3)

    sys.path.insert(0, str(ROOT))
    from kazoo.client import KazooClient

    from regctl.transfer import restore

    from regctl.transfer import file as transfer
    from tests import realservice as rs

    try:
        rs.check_available()
    except rs.Unavailable as exc:
        raise SystemExit(f"import_real: {exc}")
    services = [f"svc-{k:02d}" for k in range(a.services)]
    wanted = [(services[i % len(services)], f"{services[i % len(services)]}-{i:04d}") for i in range(a.instances)]
    figures: dict = {"generation": a.generation, "instances": a.instances, "services": a.services,
                     "rounds": rounds, "concurrency": restore.CONCURRENCY}
    tmp = Path(tempfile.mkdtemp(prefix="regctl-bench-import-"))
    with zookeeper() as hosts:
        pg = rs.PgCluster()
        pg.start()
        cs = None
        zk = KazooClient(hosts=hosts, timeout=10)
        try:
            zk.start(timeout=15)
            cs = rs.ConfigService(a.generation, hosts, pg, tmp, session_timeout=SESSION, monitor_interval=3600)
            cs.start()
            t = time.perf_counter()
            register_all(cs, wanted)
            figures["register_s"] = time.perf_counter() - t
            env = child_env(**cs.env)
            backup = tmp / "backup.json"
            proc = subprocess.run([sys.executable, "-m", "regctl", "export", "-f", str(backup)], env=env,
                                  capture_output=True, timeout=120)
            if proc.returncode != 0:
                raise SystemExit(f"regctl export exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
            entries = transfer.parse_document(backup.read_text(), str(backup)).entries
            if len(entries) != a.instances + 1:  # and the Config Service's own node
                raise SystemExit(f"export holds {len(entries)} entries, expected {a.instances + 1}")
            payloads = [e.registration.payload() for e in entries]
            cmd = [sys.executable, "-m", "regctl", "import", str(backup), "--yes", "-o", "json"]

            times: dict[str, list[float]] = {"import": [], "loop": []}
            cpus: dict[str, list[float]] = {"import": [], "loop": []}
            for r in range(rounds):
                for side in (("import", "loop") if r % 2 == 0 else ("loop", "import")):
                    dead = crash_restart(cs, zk)
                    if side == "import":
                        wall, doc, cpu = run_import(cmd, env)
                        counts = doc["plan"]["counts"]
                        results = {x["result"] for x in doc["results"]}
                        if counts["restore"] != a.instances + 1 or results != {"restored"}:
                            raise SystemExit(f"import did not restore everything: {counts}, {results}")
                    else:
                        wall, cpu = plain_loop(cs.url, payloads, restore.CONCURRENCY)
                    if wall > SESSION - 5:
                        print(f"warning: a run took {wall:.0f} s, near the {SESSION} s session timeout",
                              file=sys.stderr)
                    check_restored(zk, cs, wanted, dead, side)
                    times[side].append(wall)
                    cpus[side].append(cpu)
                    print(f"  round {r + 1} {side:<6} {ms(wall)}  (client CPU {ms(cpu)})", flush=True)
            # the fixed part: start-up, reading the file and ZooKeeper, the plan (no writes: the state stays)
            crash_restart(cs, zk)
            dry = []
            for _ in range(3):
                wall, doc, _cpu = run_import(cmd[:-3] + ["--dry-run", "-o", "json"], env)
                if doc["plan"]["counts"]["restore"] != a.instances + 1:
                    raise SystemExit(f"dry run planned {doc['plan']['counts']}")
                dry.append(wall)
            figures["dry_run_ms"] = median(dry) * 1000
            if a.profile:
                crash_restart(cs, zk)
                profile_import(cs, backup)
        finally:
            zk.stop()
            zk.close()
            if cs is not None:
                cs.close()
            pg.destroy()
            shutil.rmtree(tmp, ignore_errors=True)
    imp, loop = median(times["import"]), median(times["loop"])
    imp_cpu, loop_cpu = median(cpus["import"]), median(cpus["loop"])
    n = a.instances + 1
    rows = [
        (f"plain httpx loop, deregister+register x {n}, {restore.CONCURRENCY} threads (baseline)", ms(loop),
         f"1.00x  ({loop / n * 1e3:.1f} ms/instance; client CPU {ms(loop_cpu)})"),
        (f"regctl import FILE --yes (subprocess), {n} restores", ms(imp),
         f"{imp / loop:.2f}x  (goal <= 1.1x; client CPU {ms(imp_cpu)})"),
        ("  of which start-up + plan (regctl import FILE --dry-run)", ms(figures["dry_run_ms"] / 1000),
         f"{figures['dry_run_ms'] / 1000 / loop:.2f}x"),
    ]
    print_table(f"import after kill -9, real Config Service ({a.generation}), median of {rounds}", rows)
    figures.update({"import_ms": imp * 1000, "loop_ms": loop * 1000, "ratio": imp / loop,
                    "import_cpu_ms": imp_cpu * 1000, "loop_cpu_ms": loop_cpu * 1000,
                    "import_runs_ms": [x * 1000 for x in times["import"]],
                    "loop_runs_ms": [x * 1000 for x in times["loop"]]})
    write_json(a.json, "import_real", figures)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
