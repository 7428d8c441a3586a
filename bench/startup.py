"""Startup time: medians of ``python -c pass``, ``regctl --version``, ``regctl --help`` and a TAB.

regctl runs as ``python -m regctl`` (the same interpreter, this checkout's src/ on
PYTHONPATH) so the comparison with bare ``python -c pass`` is like for like; the
installed console script, when it is on PATH, is reported too. Runs are interleaved
(pass, --version, --help, TAB, pass, ...) so machine noise hits every row alike.

    python bench/startup.py            # 21 rounds
    python bench/startup.py --quick    # 9 rounds
"""

from __future__ import annotations

import shutil
import sys

from _common import args, child_env, median, ms, print_table, run_child, write_json

GOALS = {"version": 2.5, "help": 4.0}


def main() -> int:
    a = args(__doc__.splitlines()[0])
    rounds = 9 if a.quick else 21
    py = sys.executable
    env = child_env()
    cmds = {
        "pass": [py, "-c", "pass"],
        "version": [py, "-m", "regctl", "--version"],
        "help": [py, "-m", "regctl", "--help"],
        "list_help": [py, "-m", "regctl", "list", "--help"],
        "complete": [py, "-m", "regctl"],
    }
    envs = {k: env for k in cmds}
    envs["complete"] = child_env(_REGCTL_COMPLETE="bash", _REGCTL_LINE="regctl li", _REGCTL_CUR="li")
    script = shutil.which("regctl")
    if script:
        cmds["script_version"] = [script, "--version"]
        cmds["script_help"] = [script, "--help"]
        envs["script_version"] = envs["script_help"] = env
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for k, c in cmds.items():  # warm the page cache and .pyc files
        run_child(c, envs[k])
    for _ in range(rounds):
        for k, c in cmds.items():
            wall, code, _rss, _ = run_child(c, envs[k])
            if code != 0:
                print(f"{' '.join(c)} exited {code}", file=sys.stderr)
                return 1
            times[k].append(wall)
    med = {k: median(v) for k, v in times.items()}
    base = med["pass"]
    rows = [("python -c pass (baseline)", ms(base), "1.00x")]
    labels = {"version": "python -m regctl --version", "help": "python -m regctl --help",
              "list_help": "python -m regctl list --help", "complete": "TAB: regctl li<TAB> (bash)",
              "script_version": f"{script} --version", "script_help": f"{script} --help"}
    figures = {"rounds": rounds, "pass_ms": base * 1000}
    for k in cmds:
        if k == "pass":
            continue
        ratio = med[k] / base
        goal = GOALS.get(k)
        note = f"{ratio:.2f}x" + (f"  (goal <= {goal}x: {'ok' if ratio <= goal else 'MISSED'})" if goal else "")
        rows.append((labels[k], ms(med[k]), note))
        figures[f"{k}_ms"] = med[k] * 1000
        figures[f"{k}_ratio"] = ratio
    print_table(f"startup, median of {rounds} interleaved runs", rows)
    write_json(a.json, "startup", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
