"""Library: 100 ``discover_url`` calls through one pooled ``ServiceRegistryHttpClient`` vs a new client per call.

Starts its own ZooKeeper and the project's contract registry in this process (with HTTP
keep-alive on, as uvicorn has it), registers one healthy instance, then times in the same run:

* per call: ``async with ServiceRegistryHttpClient() as c: await c.discover_url(...)`` for
  every call (a new httpx client, TLS context and connection each time: what the guide's
  client does, and what regctl's did before it pooled);
* pooled: one ``ServiceRegistryHttpClient`` for all calls (one connection, reused);
* pooled, 10 concurrent: the same client with ten calls in flight at once.

    python bench/library.py
    python bench/library.py --calls 300 --quick
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from _common import args, median, ms, print_table, write_json, zookeeper


def main() -> int:
    def extra(p):
        p.add_argument("--calls", type=int, default=100)
        p.add_argument("--rounds", type=int, default=0, help="repetitions per figure (default 5, --quick 3)")
    a = args(__doc__.splitlines()[0], extra)
    rounds = a.rounds or (3 if a.quick else 5)
    n = a.calls

    from regctl.client import ServiceRegistryClient, ServiceRegistryHttpClient
    from regctl.sandbox.registry.server import Identity, RegistryServer

    with zookeeper() as hosts:
        server = RegistryServer(zk_hosts=hosts, base_path="/bench-library/services", identity=Identity(self_url=None))
        server.keep_alive = True  # type: ignore[attr-defined]
        server.start()
        try:
            url = server.url
            with ServiceRegistryClient(base_url=url) as c:
                assert c.register("bench-svc", "http://bench:1", None, {"instance_id": "b-1", "status": "healthy"})

            async def per_call() -> None:
                for _ in range(n):
                    async with ServiceRegistryHttpClient(base_url=url) as c:
                        assert await c.discover_url("bench-svc")

            async def pooled() -> None:
                async with ServiceRegistryHttpClient(base_url=url) as c:
                    for _ in range(n):
                        assert await c.discover_url("bench-svc")

            async def pooled_concurrent() -> None:
                async with ServiceRegistryHttpClient(base_url=url) as c:
                    sem = asyncio.Semaphore(10)

                    async def one() -> None:
                        async with sem:
                            assert await c.discover_url("bench-svc")

                    await asyncio.gather(*(one() for _ in range(n)))

            cases = {"per_call": per_call, "pooled": pooled, "pooled_c10": pooled_concurrent}
            wall: dict[str, list[float]] = {k: [] for k in cases}
            cpu: dict[str, list[float]] = {k: [] for k in cases}
            asyncio.run(pooled())  # warm the registry's cache and the imports
            for _ in range(rounds):
                for k, fn in cases.items():
                    t, c0 = time.perf_counter(), time.process_time()
                    asyncio.run(fn())
                    wall[k].append(time.perf_counter() - t)
                    cpu[k].append(time.process_time() - c0)
        finally:
            server.stop()

    med = {k: median(v) for k, v in wall.items()}
    med_cpu = {k: median(v) for k, v in cpu.items()}
    base = med["per_call"]
    rows = [
        (f"{n} x discover_url, a new client per call (baseline)", ms(base),
         f"1.00x  (cpu {ms(med_cpu['per_call']).strip()}, {base / n * 1000:.1f} ms/call)"),
        (f"{n} x discover_url, one pooled client", ms(med["pooled"]),
         f"{base / med['pooled']:.2f}x faster  (cpu {ms(med_cpu['pooled']).strip()})"),
        (f"{n} x discover_url, pooled, 10 in flight", ms(med["pooled_c10"]),
         f"{base / med['pooled_c10']:.2f}x faster  (cpu {ms(med_cpu['pooled_c10']).strip()})"),
    ]
    print_table(f"Library discover_url: median of {rounds} (server in this process, keep-alive)", rows)
    figures = {"calls": n, "rounds": rounds, **{f"{k}_ms": v * 1000 for k, v in med.items()},
               **{f"{k}_cpu_ms": v * 1000 for k, v in med_cpu.items()},
               "pooled_ratio": base / med["pooled"], "pooled_c10_ratio": base / med["pooled_c10"]}
    write_json(a.json, "library", figures)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
