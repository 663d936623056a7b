"""10,000 users registered with a real Kamailio with digest auth.

    uv run python bench/register_kamailio.py [--users 10000] [--window 50[,10,200]] [--rate 0]
                                             [--uvloop] [--skip-memory-run]

Starts Kamailio (deploy/kamailio/kamailio.cfg, WITH_HTABLE: an htable of N users' HA1 values)
on a free loopback port, then one process registers all N users through ``RegistrationPool`` +
``RegistrationClient`` on a ``TransactionEndpoint`` (UDP) (REGISTER → 401 → REGISTER with digest
credentials computed from the stored HA1 → 200). Reports:

* time until every user is registered (first REGISTER to last 200), and REGISTERs per second;
* REGISTER transactions in flight at most (the pool's window), and the most REGISTERs started in
  any 100 ms (what the registrar sees as a burst);
* memory per registration: the client process' RSS growth over the run, and the Python heap
  the pool holds per binding once every transaction has ended (tracemalloc, separate run,
  because tracing slows the run down);
* that Kamailio's location table holds N contacts (``ul.dump brief``), then de-registration of
  everyone (time, and the table is empty afterwards).

A fixed-size window (``--window``) is the only throttle unless ``--rate`` (REGISTERs/s) is set.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from collections import Counter

from sipum_protocol.sip import digest
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationChanged,
    RegistrationClient,
    RegistrationPool,
    RegistrationState,
)
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig, TransactionEndpoint
from sipum_testing.kamailio import KamailioServer, start_kamailio

DOMAIN = "bench.test"


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def register_all(
    server: KamailioServer,
    ha1s: dict[str, str],
    *,
    window: int,
    rate: float | None,
    trace_memory: bool,
) -> dict[str, object]:
    endpoint = TransactionEndpoint(EndpointConfig(host="127.0.0.1", udp_port=0))
    await endpoint.start()
    host, port = endpoint.addresses["UDP"]
    pool = RegistrationPool(max_in_flight=window, max_rate=rate, rng=random.Random(1))
    registered = 0
    failed = 0
    done = asyncio.Event()
    n = len(ha1s)

    def on_change(event: RegistrationChanged) -> None:
        nonlocal registered, failed
        if event.state is RegistrationState.REGISTERED:
            registered += 1
        elif event.state is RegistrationState.FAILED:
            failed += 1
        if registered + failed >= n:
            done.set()

    started_per_100ms: Counter[int] = Counter()
    t0 = 0.0

    class CountingSender:
        """The endpoint, counting REGISTERs started per 100 ms."""

        def send_request(self, request, peer):  # type: ignore[no-untyped-def]
            started_per_100ms[int((time.perf_counter() - t0) * 10)] += 1
            return endpoint.send_request(request, peer)

    client = RegistrationClient(
        pool, Peer("UDP", server.host, server.port), CountingSender(), on_change=on_change
    )
    gc.collect()
    if trace_memory:
        tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0] if trace_memory else 0
    rss_before = rss_bytes()
    t0 = time.perf_counter()
    for user, ha1 in ha1s.items():
        client.add(
            RegistrationBinding(
                user=user,
                domain=DOMAIN,
                contact_host=host,
                contact_port=port,
                credentials=DigestCredentials(username=user, ha1={"MD5": ha1}, realm=DOMAIN),
                expires=3600,
            )
        )
    client.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - t0
    rss_after = rss_bytes()
    result: dict[str, object] = {
        "users": n,
        "window": window,
        "rate_limit_per_s": rate,
        "registered": registered,
        "failed": failed,
        "seconds_until_all_registered": round(elapsed, 3),
        "registrations_per_s": round(n / elapsed, 1),
        "register_requests_sent": pool.stats.requests_sent,
        "responses_by_status": dict(sorted(pool.stats.by_status.items())),
        "transaction_timeouts": pool.stats.failures,
        "max_in_flight": pool.stats.max_in_flight_seen,
        "max_registers_started_in_100ms": max(started_per_100ms.values()),
        "client_rss_growth_bytes_per_registration": round((rss_after - rss_before) / n),
    }
    if trace_memory:
        # Let every REGISTER transaction reach Terminated (Timer K = T4 = 5 s on UDP) so only
        # the steady-state registrations remain, then measure what the heap still holds.
        await asyncio.sleep(5.5)
        gc.collect()
        heap_after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        result["client_transactions_left"] = endpoint.layer.client_transactions
        result["heap_bytes_per_registration"] = round((heap_after - heap_before) / n)
    result["kamailio_location_aors"] = server.registered_count()
    t1 = time.perf_counter()
    all_done = await client.stop(grace=300.0)
    result["seconds_to_deregister_all"] = round(time.perf_counter() - t1, 3)
    result["deregistered_all"] = all_done
    result["kamailio_location_aors_after_stop"] = server.registered_count()
    await endpoint.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--window", default="50", help="REGISTERs in flight; a list (10,50,200) compares them"
    )
    parser.add_argument("--rate", type=float, default=0.0, help="REGISTERs/s, 0 = no limit")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--skip-memory-run", action="store_true")
    args = parser.parse_args()

    ha1s = {
        f"user{i:05d}": digest.compute_ha1(f"user{i:05d}", DOMAIN, f"pw{i}", "MD5")
        for i in range(args.users)
    }
    if args.uvloop:
        import uvloop

        uvloop.install()
    rate = args.rate or None
    windows = [int(w) for w in args.window.split(",")]
    plan = [(w, False) for w in windows]
    if not args.skip_memory_run:
        plan.append((windows[0], True))
    runs: list[dict[str, object]] = []
    for window, trace_memory in plan:
        server = start_kamailio(ha1s=ha1s, domain=DOMAIN, shm_mb=256)
        try:
            result = asyncio.run(
                register_all(server, ha1s, window=window, rate=rate, trace_memory=trace_memory)
            )
        finally:
            server.stop()
        result["run"] = "memory (tracemalloc on)" if trace_memory else "timing"
        runs.append(result)
        print(json.dumps(result, indent=2), flush=True)
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "event_loop": "uvloop" if args.uvloop else "asyncio",
            }
        )
    )


if __name__ == "__main__":
    main()
