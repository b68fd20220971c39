"""Agent join benchmark: N agents join one poller at concurrency C over TLS (a new connection per agent, as
distinct machines would), beside the ceiling `openssl speed ecdsap256` gives on the same machine in the same run.

Usage: python3 Benchmarks/join_bench.py --bin-dir DIR [--agents 2000] [--concurrency 32] [--cached N]
       [--perf FILE] [--perf-core FILE]
DIR holds release builds of muster-core and muster-poller. Keys and CSRs are made before the clock starts;
the poller's CPU time is read from /proc so its cost per join can be set beside the crypto ceiling.
--cached N (at least --agents): the poller holds N pending packages when the joins start (the ones beyond the
joining agents are created through the bulk endpoint); its RSS is read empty, with N cached, and after the joins.
--warmup W: W more agents join first, unmeasured, so the measured joins start with N cached on a warm poller.
"""
import argparse
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        assert process.poll() is None, f"{what} exited {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid):
    """Voluntary plus involuntary context switches summed over the process's threads (its pools live for the run)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{task}/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def rss_mib(pid):
    """The process's RSS in MiB, and its anonymous (heap, stacks) and file-backed (code) parts."""
    fields = {line.split(":")[0]: int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith(("VmRSS", "RssAnon", "RssFile"))}
    return {"rss": round(fields["VmRSS"] / 1024, 1), "anon": round(fields["RssAnon"] / 1024, 1), "file": round(fields["RssFile"] / 1024, 1)}


def openssl_ceiling(seconds):
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out)
    sign, verify = float(match.group(1)), float(match.group(2))
    # A join costs the poller about two signatures (the TLS handshake, the SVID) and two verifications (the CSR, and
    # the ECDHE share's check in the handshake); this is the single-core rate if nothing else cost anything.
    return sign, verify, 1 / (2 / sign + 2 / verify)


class Core:
    def __init__(self, bin_dir, work):
        self.data = os.path.join(work, "core")
        self.http, self.grpc = free_port(), free_port()
        self.log = open(os.path.join(work, "core.log"), "w")
        self.process = subprocess.Popen([f"{bin_dir}/muster-core", "serve", "--data-dir", self.data, "--http-listen", f"127.0.0.1:{self.http}",
                                         "--grpc-listen", f"127.0.0.1:{self.grpc}", "--create-rate-limit", "100000000"],
                                        stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "MUSTER_LOG_LEVEL": "warning"})
        wait_port(self.http, self.process, "muster-core")
        while not os.path.exists(f"{self.data}/admin.token"):
            time.sleep(0.05)
        self.token = open(f"{self.data}/admin.token").read().strip()

    def call(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def package(self, body):
        created = json.loads(self.call("POST", "/api/edge-packages", body))
        archive = self.call("GET", f"/api/edge-packages/{created['id']}/download")
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            token = tar.extractfile("join-token").read().decode().strip()
        return created, archive, token


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cached", type=int, help="pending packages the poller holds when the joins start (default: --agents)")
    parser.add_argument("--warmup", type=int, default=0, help="agents that join first, unmeasured")
    parser.add_argument("--skip-transport", action="store_true", help="leave out the transport-alone and openssl rows")
    parser.add_argument("--quiet", type=int, default=0,
                        help="also read the poller's RSS this many seconds after the joins, with nothing asked of it")
    parser.add_argument("--perf", help="record the poller with `perf record -g` during the joins into this file")
    parser.add_argument("--perf-core", help="record Core (recording the activations) the same way into this file")
    args = parser.parse_args()
    cached = max(args.cached or args.agents, args.agents)
    joining = args.agents + args.warmup
    total = cached + args.warmup
    work = tempfile.mkdtemp(prefix="muster-join-bench-")
    core = Core(args.bin_dir, work)
    poller = None
    try:
        _, archive, _ = core.package({"name": "bench", "component_type": "poller"})
        open(f"{work}/poller.tar.gz", "wb").write(archive)
        subprocess.run([f"{args.bin_dir}/muster-poller", "install", "--package", f"{work}/poller.tar.gz", "--dir", f"{work}/poller"],
                       check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        poller_log = open(f"{work}/poller.log", "w")
        poller = subprocess.Popen([f"{args.bin_dir}/muster-poller", "run", "--dir", f"{work}/poller", "--listen", f"127.0.0.1:{port}"],
                                  stdout=poller_log, stderr=subprocess.STDOUT, env={**os.environ, "MUSTER_LOG_LEVEL": "warning"})
        wait_port(port, poller, "muster-poller")
        time.sleep(2)
        rss_empty = rss_mib(poller.pid)

        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(lambda i: core.package({"name": f"agent-{i}", "component_type": "agent", "poller_id": "bench",
                                                           "ttl_seconds": 3600})[2], range(joining)))
        print(f"created and downloaded {joining} agent packages in {time.time() - started:.1f} s", file=sys.stderr)
        for first in range(joining, total, 1000):
            items = [{"name": f"agent-{i}", "component_type": "agent", "poller_id": "bench", "ttl_seconds": 3600}
                     for i in range(first, min(first + 1000, total))]
            core.call("POST", "/api/edge-packages/bulk", {"items": items})
        status = lambda: subprocess.run([f"{args.bin_dir}/muster-poller", "status", "--dir", f"{work}/poller"], capture_output=True, text=True).stdout
        deadline = time.time() + 600
        while f"packages:  {total} pending" not in status():
            assert time.time() < deadline, "the poller did not cache every package"
            time.sleep(0.5)

        sys.path.insert(0, os.environ["MUSTER_PROTO_STUBS"])
        from muster.onboarding.v1 import onboarding_pb2 as pb, onboarding_pb2_grpc as rpc
        from cryptography.hazmat.primitives import serialization
        requests = []
        for token in tokens:
            key = ec.generate_private_key(ec.SECP256R1())
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])).sign(key, hashes.SHA256())
            requests.append(pb.JoinRequest(join_token=token, csr=csr.public_bytes(serialization.Encoding.DER)))
        bundle = open(f"{work}/poller/identity/bundle.pem", "rb").read()
        credentials = grpc.ssl_channel_credentials(root_certificates=bundle)
        latencies, failures = [], []
        lock = threading.Lock()

        def join(request):
            begin = time.perf_counter()
            try:
                with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                    rpc.EdgeOnboardingStub(channel).Join(request, timeout=60)
                with lock:
                    latencies.append(time.perf_counter() - begin)
            except grpc.RpcError as error:
                with lock:
                    failures.append(error.code())

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(join, requests[args.agents:]))
        assert not failures, f"{len(failures)} warm-up joins failed: {set(failures)}"
        latencies.clear()
        requests = requests[:args.agents]
        time.sleep(2)
        rss_cached = rss_mib(poller.pid)
        profilers = [subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", str(pid), "-o", path],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for pid, path in ((poller.pid, args.perf), (core.process.pid, args.perf_core)) if path]
        if profilers:
            time.sleep(1)
        cpu_before, core_before, switches_before = cpu_seconds(poller.pid), cpu_seconds(core.process.pid), context_switches(poller.pid)
        begin = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(join, requests))
        wall = time.perf_counter() - begin
        poller_cpu = cpu_seconds(poller.pid) - cpu_before
        switches = context_switches(poller.pid) - switches_before
        time.sleep(1)  # the last activations reach Core
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        core_cpu = cpu_seconds(core.process.pid) - core_before
        assert not failures, f"{len(failures)} joins failed: {set(failures)}"
        rss_joined = rss_mib(poller.pid)
        rss_quiet = None
        if args.quiet:
            time.sleep(args.quiet)
            rss_quiet = rss_mib(poller.pid)
        latencies.sort()
        rate = args.agents / wall
        result = {
            "agents": args.agents, "concurrency": args.concurrency, "cached": cached, "wall_s": round(wall, 2),
            "joins_per_s": round(rate, 1), "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, 2),
            "poller_cpu_ms_per_join": round(poller_cpu / args.agents * 1000, 3),
            "poller_context_switches_per_join": round(switches / args.agents, 1),
            "core_cpu_ms_per_join": round(core_cpu / args.agents * 1000, 3),
            "poller_rss_mib_empty": rss_empty, "poller_rss_mib_cached": rss_cached, "poller_rss_mib_after_joins": rss_joined,
        }
        if rss_quiet is not None:
            result.update({"quiet_s": args.quiet, "poller_rss_mib_after_quiet": rss_quiet})
        if args.skip_transport:
            print(json.dumps(result, indent=2))
            return

        # The transport alone, same shape: a new TLS connection per call, GetBundle (no crypto, no store).
        def bundle_call(_):
            with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                rpc.EdgeOnboardingStub(channel).GetBundle(pb.GetBundleRequest(), timeout=60)

        cpu_before, switches_before = cpu_seconds(poller.pid), context_switches(poller.pid)
        begin = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(bundle_call, range(args.agents)))
        transport_wall = time.perf_counter() - begin
        transport_cpu = cpu_seconds(poller.pid) - cpu_before
        transport_switches = context_switches(poller.pid) - switches_before
        sign, verify, ceiling = openssl_ceiling(5)
        result.update({
            "openssl_sign_per_s": sign, "openssl_verify_per_s": verify, "ceiling_joins_per_s": round(ceiling, 1),
            "joins_per_s_vs_ceiling_pct": round(100 * rate / ceiling, 1),
            "poller_cpu_vs_ceiling_pct": round(100 * (1 / ceiling) / (poller_cpu / args.agents), 1),
            "transport_only_calls_per_s": round(args.agents / transport_wall, 1),
            "transport_only_poller_cpu_ms_per_call": round(transport_cpu / args.agents * 1000, 3),
            "transport_only_context_switches_per_call": round(transport_switches / args.agents, 1),
            "join_own_poller_cpu_ms": round((poller_cpu - transport_cpu) / args.agents * 1000, 3),
            "joins_per_s_vs_transport_pct": round(100 * rate / (args.agents / transport_wall), 1),
            "joins_per_s_vs_spire_default_limit_pct": round(100 * rate / 500, 1),
        })
        print(json.dumps(result, indent=2))
    finally:
        if poller is not None:
            poller.send_signal(signal.SIGTERM)
            poller.wait(timeout=30)
        core.process.send_signal(signal.SIGTERM)
        core.process.wait(timeout=30)


if __name__ == "__main__":
    main()
