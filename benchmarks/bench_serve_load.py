"""Load test for ``advlab serve``: many clients, large bodies, loopback only, bounded.

Two phases, each against a fresh server process (the bundled ``mnist-mlp``, so that the
server's own work is small and the HTTP layer is what is measured):

1. ``--requests`` POSTs of ``--images`` MNIST images each, from ``--concurrency`` client
   threads at once: counts of 200s, 503s (the server's bounded queue, with Retry-After)
   and connection errors; p50/p99 latency; requests per second.
2. ``--big-clients`` clients each POST one body of about ``--big-mb`` MB at the same time
   (a valid ``npy`` batch of ~9,000 images): the server's peak RSS (``VmHWM``) and the
   answers it gave.

Stops by itself: every client sends a fixed number of requests; each has a 120 s timeout.

    python benchmarks/bench_serve_load.py [--requests 2000] [--concurrency 200]
        [--big-clients 50] [--big-mb 38]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np

SERVER = """
import sys
from advlab.models import load_model
from advlab.serve import serve
model = load_model("mnist-mlp", device="cpu")
serve(model, port=0, max_batch=int(sys.argv[1]),
      ready=lambda url: print(url, flush=True))
"""


def start_server(max_batch: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(max_batch)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the server did not start (said {url!r})")
    return process, url


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def body_for(images: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.save(buffer, rng.random((images, 1, 28, 28), dtype=np.float32))
    return json.dumps({"npy": base64.b64encode(buffer.getvalue()).decode()}).encode()


def post(port: int, body: bytes) -> tuple[int | str, float]:
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        status: int | str = response.status
        if status == 503 and response.getheader("Retry-After") is None:
            status = "503 without Retry-After"
    except OSError as error:
        status = type(error).__name__
    finally:
        conn.close()
    return status, time.perf_counter() - began


def run_clients(
    port: int, body: bytes, clients: int, per_client: int
) -> list[tuple[object, float]]:
    results: list[tuple[object, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        barrier.wait()
        for _ in range(per_client):
            outcome = post(port, body)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--big-clients", type=int, default=50)
    parser.add_argument("--big-mb", type=float, default=38.0)
    args = parser.parse_args()

    process, url = start_server(max_batch=256)
    port = int(url.rsplit(":", 1)[1])
    try:
        body = body_for(args.images)
        per_client = max(1, args.requests // args.concurrency)
        began = time.perf_counter()
        results = run_clients(port, body, args.concurrency, per_client)
        seconds = time.perf_counter() - began
        counts = Counter(status for status, _ in results)
        latencies = [latency for _, latency in results]
        ok = [latency for status, latency in results if status == 200]
        errors = sum(n for status, n in counts.items() if status not in (200, 503))
        print(f"phase 1: {len(results)} requests of {args.images} images ({len(body)} bytes), "
              f"{args.concurrency} concurrent clients, {seconds:.1f} s, "
              f"{len(results) / seconds:.0f} req/s")  # fmt: skip
        print(f"  answers: {dict(counts)}; connection errors: {errors}")
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        ok50, ok99 = percentile(ok, 0.5) * 1000, percentile(ok, 0.99) * 1000
        print(f"  latency all: p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
              f"200s only: p50 {ok50:.0f} ms, p99 {ok99:.0f} ms")  # fmt: skip
        rss, peak = peak_rss_mb(process.pid)
        print(f"  server RSS now {rss:.0f} MB, peak {peak:.0f} MB")
    finally:
        process.terminate()
        process.wait(30)

    images = int(args.big_mb * 1e6 * 3 / 4 / (4 * 784))
    process, url = start_server(max_batch=images)
    port = int(url.rsplit(":", 1)[1])
    try:
        body = body_for(images)
        baseline = peak_rss_mb(process.pid)[0]
        began = time.perf_counter()
        results = run_clients(port, body, args.big_clients, 1)
        seconds = time.perf_counter() - began
        counts = Counter(status for status, _ in results)
        errors = sum(n for status, n in counts.items() if status not in (200, 503))
        rss, peak = peak_rss_mb(process.pid)
        print(f"phase 2: {args.big_clients} concurrent bodies of {len(body) / 1e6:.1f} MB "
              f"({images} images each), {seconds:.1f} s")  # fmt: skip
        print(f"  answers: {dict(counts)}; connection errors: {errors}")
        print(f"  server RSS before {baseline:.0f} MB, after {rss:.0f} MB, peak {peak:.0f} MB")
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
