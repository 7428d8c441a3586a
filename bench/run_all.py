"""Run every bench script and print one table of all figures and ratios.

    python bench/run_all.py            # about 5-8 minutes on 2 cores
    python bench/run_all.py --quick    # fewer repetitions
    python bench/run_all.py --only startup zk_list

Each script runs in its own process (its own ZooKeeper, servers and clean-up) and
writes its figures as JSON; this script only collects them. Every ratio compares
two figures taken in the same script run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["startup", "zk_list", "api_list", "health", "monitor", "library", "completion"]


def fmt_ms(v: float) -> str:
    return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def rows_for(name: str, f: dict) -> list[tuple[str, str, str, str]]:
    """(what, figure, baseline, ratio/goal)."""
    if name == "startup":
        return [
            ("startup: regctl --version", fmt_ms(f["version_ms"]), f"python -c pass {fmt_ms(f['pass_ms'])}",
             f"{f['version_ratio']:.2f}x (goal <= 2.5x)"),
            ("startup: regctl --help", fmt_ms(f["help_ms"]), "python -c pass",
             f"{f['help_ratio']:.2f}x (goal <= 4x)"),
            ("startup: regctl li<TAB>", fmt_ms(f["complete_ms"]), "python -c pass", f"{f['complete_ratio']:.2f}x"),
            ("startup: regctl list --help", fmt_ms(f["list_help_ms"]), "python -c pass",
             f"{f['list_help_ratio']:.2f}x"),
        ]
    if name == "zk_list":
        n = f"{f['instances']:,} instances"
        return [
            (f"ZooKeeper read phase, snapshot() ({n})", fmt_ms(f["snapshot_ms"]),
             f"kazoo async {fmt_ms(f['kazoo_async_ms'])}", f"{f['speedup_vs_async']:.1f}x faster (goal >= 2x)"),
            ("  same, async fan-out (fallback)", fmt_ms(f["snapshot_fanout_ms"]), "kazoo async",
             f"{f['kazoo_async_ms'] / f['snapshot_fanout_ms']:.2f}x"),
            ("  kazoo sync, node by node", fmt_ms(f["kazoo_sync_ms"]), "kazoo async",
             f"{f['kazoo_sync_ms'] / f['kazoo_async_ms']:.2f}x slower"),
            ("core list (snapshot + summarize + JSON)", fmt_ms(f["core_list_ms"]), "", ""),
            ("CLI: regctl list --source zk -o json", fmt_ms(f["cli_list_ms"]),
             f"regctl --version {fmt_ms(f['cli_version_ms'])}", f"{f['cli_list_ms'] / f['cli_version_ms']:.1f}x"),
            ("CLI: regctl inspect NAME --source zk", fmt_ms(f["cli_inspect_ms"]), "regctl --version",
             f"{f['cli_inspect_ms'] / f['cli_version_ms']:.1f}x"),
            ("core inspect (1 service)", fmt_ms(f["inspect_core_ms"]),
             f"kazoo async {fmt_ms(f['kazoo_async_inspect_ms'])}", ""),
            (f"peak RSS: regctl list ({n})", f"{f['list_maxrss_mb']:.0f} MB",
             f"regctl --version {f['version_maxrss_mb']:.0f} MB", "goal < 150 MB"),
        ]
    if name == "api_list":
        best = min((k for k in f if k.startswith("map") and k.endswith("_ms")), key=lambda k: f[k])
        return [
            (f"API list, {f['services']:,} services, concurrency 16", fmt_ms(f["map16_ms"]),
             f"sequential {fmt_ms(f['sequential_ms'])}", f"{f['speedup_map16']:.2f}x faster"),
            (f"  best concurrency measured ({best[3:-3]})", fmt_ms(f[best]), "sequential",
             f"{f['sequential_ms'] / f[best]:.2f}x faster"),
            ("CLI: regctl list --source api -o json", fmt_ms(f["cli_list_ms"]), "", ""),
        ]
    if name == "health":
        return [
            (f"health --all, {f['instances']:,} inst., {f['hanging']} hang, --timeout 2", f"{f['cli_default_s']:.2f} s",
             f"sequential (extrap.) {f['sequential_total_s']:.0f} s",
             f"{f['sequential_total_s'] / f['cli_default_s']:.0f}x faster; goal <= {f['goal_s']:g} s"),
            ("  probe_many in process (defaults)", f"{f['probe_many_s']:.2f} s",
             f"fixed 32 slots {f['probe_many_fixed32_s']:.2f} s",
             f"{f['probe_many_fixed32_s'] / f['probe_many_s']:.2f}x faster"),
        ]
    if name == "monitor":
        return [
            (f"list -o wide, earlier generation, {f['services']} services", fmt_ms(f["earlier_wide_ms"]),
             f"list {fmt_ms(f['earlier_table_ms'])}", f"{f['earlier_wide_ratio']:.2f}x (generation probe only)"),
            (f"list -o wide, later generation, {f['services']} services", fmt_ms(f["later_wide_ms"]),
             f"list {fmt_ms(f['later_table_ms'])}", f"{f['later_wide_ratio']:.2f}x (+ monitor reads)"),
            (f"health --all --server, {f['hanging']} services hanging", fmt_ms(f["health_server_ms"]),
             "one service after another", f"{f['health_server_speedup']:.1f}x faster"),
        ]
    if name == "library":
        return [
            (f"library: {f['calls']} x discover_url, one pooled client", fmt_ms(f["pooled_ms"]),
             f"new client per call {fmt_ms(f['per_call_ms'])}", f"{f['pooled_ratio']:.1f}x faster"),
            ("  pooled, 10 in flight", fmt_ms(f["pooled_c10_ms"]), "new client per call",
             f"{f['pooled_c10_ratio']:.1f}x faster"),
        ]
    if name == "completion":
        base = f"python -c pass {fmt_ms(f['pass_ms'])}"
        return [
            ("completion: regctl ins<TAB>", fmt_ms(f["command_ms"]), base, ""),
            ("  service names from ZooKeeper", fmt_ms(f["zk_ms"]), "regctl ins<TAB>",
             f"+{fmt_ms(f['zk_ms'] - f['command_ms'])}"),
            ("  registry down (refused)", fmt_ms(f["down_ms"]), "regctl ins<TAB>",
             f"+{fmt_ms(f['down_ms'] - f['command_ms'])} (goal: under 1 s)"),
            ("  registry hangs", fmt_ms(f["hangs_ms"]), "regctl ins<TAB>",
             f"+{fmt_ms(f['hangs_ms'] - f['command_ms'])} (goal: under 1 s)"),
        ]
    return [(k, str(v), "", "") for k, v in f.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="*", choices=SCRIPTS)
    a = p.parse_args()
    results: dict[str, dict] = {}
    failed = []
    for name in a.only or SCRIPTS:
        fd, path = tempfile.mkstemp(prefix=f"regctl-bench-{name}-", suffix=".json")
        os.close(fd)
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--json", path] + (["--quick"] if a.quick else [])
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, timeout=600)
            if proc.returncode == 0:
                results[name] = json.loads(Path(path).read_text())["figures"]
            else:
                failed.append(name)
        except subprocess.TimeoutExpired:
            failed.append(name)
        finally:
            os.unlink(path)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    rows = [("figure", "value", "baseline (same run)", "ratio / goal")]
    for name, figs in results.items():
        rows.extend(rows_for(name, figs))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("\n== all figures (python %s, %d CPUs)" % (sys.version.split()[0], os.cpu_count() or 0))
    for i, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(widths[j]) if j != 1 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
