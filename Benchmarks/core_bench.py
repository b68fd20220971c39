"""Core control-plane benchmark: create N packages over HTTP, then filtered/paged list latency and Core's RSS.

Usage: python3 Benchmarks/core_bench.py --bin PATH/muster-core [--packages 100000] [--postgres URL]
Runs on SQLite always, and on PostgreSQL when --postgres names a server (a fresh database is created there).
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Client:
    def __init__(self, port, token):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, data


def run(binary, label, packages, threads, database=None):
    data_dir = tempfile.mkdtemp(prefix="muster-bench-")
    port = free_port()
    args = [binary, "serve", "--data-dir", data_dir, "--http-listen", f"127.0.0.1:{port}", "--grpc-listen", f"127.0.0.1:{free_port()}",
            "--create-rate-limit", "100000000", "--reaper-interval", "3600"] + (["--database", database] if database else [])
    env = {**os.environ, "MUSTER_LOG_LEVEL": "warning"}
    core = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        while not os.path.exists(f"{data_dir}/admin.token") or not ready(port):
            assert time.time() < deadline and core.poll() is None, "Core did not start"
            time.sleep(0.1)
        token = open(f"{data_dir}/admin.token").read().strip()
        setup = Client(port, token)
        pollers = [f"edge-{i}" for i in range(10)]
        for name in pollers:
            assert setup.call("POST", "/api/edge-packages", {"name": name, "component_type": "poller", "ttl_seconds": 86400})[0] == 201

        counter = iter(range(packages))
        lock = threading.Lock()
        failures = []

        def worker():
            client = Client(port, token)
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                kind = "checker" if index % 5 == 0 else "agent"
                status, body = client.call("POST", "/api/edge-packages", {
                    "name": f"n-{index}", "component_type": kind, "poller_id": pollers[index % 10],
                    "site": f"site-{index % 50}", "ttl_seconds": 86400, "selectors": ["unix:uid:1000"]})
                if status != 201:
                    failures.append((status, body[:200]))

        started = time.perf_counter()
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        assert not failures, failures[:3]
        create_rate = packages / elapsed

        # Some revoked and downloaded packages, so status filters select real subsets.
        listing = json.loads(setup.call("GET", "/api/edge-packages?limit=1000")[1])["items"]
        for item in listing[:300]:
            setup.call("POST", f"/api/edge-packages/{item['id']}/revoke", {})

        queries = ["/api/edge-packages?limit=100", "/api/edge-packages?type=checker&limit=100",
                   "/api/edge-packages?status=created&limit=50", "/api/edge-packages?poller=edge-3&limit=100",
                   "/api/edge-packages?site=site-7&limit=100", "/api/edge-packages?status=revoked&type=agent&limit=100"]
        reader = Client(port, token)
        # Cursors deep in the list, so later pages are measured too.
        cursors = []
        cursor = None
        for _ in range(20):
            page = json.loads(reader.call("GET", "/api/edge-packages?limit=1000" + (f"&cursor={cursor}" if cursor else ""))[1])
            cursor = page["next_cursor"]
            cursors.append(cursor)
        latencies = []
        for i in range(2000):
            query = queries[i % len(queries)]
            if i % 3 == 0:
                query += f"&cursor={random.choice(cursors)}"
            t0 = time.perf_counter()
            status, _ = reader.call("GET", query)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert status == 200
        latencies.sort()
        rss, peak = rss_mib(core.pid)
        return {"backend": label, "packages": packages, "create_per_s": create_rate, "list_p50_ms": latencies[len(latencies) // 2],
                "list_p99_ms": latencies[int(len(latencies) * 0.99)], "rss_mib": rss, "peak_rss_mib": peak}
    finally:
        core.send_signal(signal.SIGTERM)
        core.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


def ready(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--packages", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--postgres", help="postgres://user@host:port/postgres (a fresh database is created)")
    options = parser.parse_args()
    results = [run(options.bin, "sqlite", options.packages, options.threads)]
    if options.postgres:
        name = "muster_bench_" + uuid.uuid4().hex[:8]
        host_port = options.postgres.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"], check=True)
        results.append(run(options.bin, "postgresql", options.packages, options.threads, options.postgres.rsplit("/", 1)[0] + "/" + name))
    print("| backend | packages | create/s | list p50 ms | list p99 ms | RSS MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['packages']:,} | {r['create_per_s']:.0f} | {r['list_p50_ms']:.2f} | {r['list_p99_ms']:.2f} | {r['rss_mib']:.0f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
