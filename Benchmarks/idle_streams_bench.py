"""Idle-Core benchmark: N open WatchPackages streams (pollers attested for real, 32 streams each, the most one
poller SVID may hold), nothing happening. Measures Core's CPU (utime+stime from /proc) and the database's
statements per second (PostgreSQL's committed transactions, every autocommit statement counting one) over a
quiet window. Run side by side in one go: the event hub's wake-ups with the default 30 s safety poll ("push"),
and the same binary with a 0.5 s poll, which is exactly the old loop (each idle stream read the events table
every 500 ms).

Usage: python3 Benchmarks/idle_streams_bench.py --bin PATH/muster-core --postgres URL [--streams 2000] [--window 30]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
import flood_bench  # noqa: E402
from flood_bench import stubs  # noqa: E402

STREAMS_PER_POLLER = 32


def csr(key, ca=False):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def psql(url, sql):
    return subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True).stdout.strip()


class Core(flood_bench.Core):
    """flood_bench's Core launcher (a release muster-core on free ports) on the database given in `extra`."""

    def api(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def cpu_seconds(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def attest(core, pb, pb_grpc, name):
    package = json.loads(core.api("POST", "/api/edge-packages", {"name": name, "component_type": "poller"}))
    import io
    import tarfile
    archive = tarfile.open(fileobj=io.BytesIO(core.api("GET", f"/api/edge-packages/{package['id']}/download")))
    token = archive.extractfile("join-token").read().decode().strip()
    bundle = open(f"{core.data}/ca/bundle.pem", "rb").read()
    with grpc.secure_channel(f"127.0.0.1:{core.grpc}", grpc.ssl_channel_credentials(root_certificates=bundle)) as channel:
        svid_key, ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        reply = pb_grpc.CoreOnboardingStub(channel).AttestPoller(
            pb.AttestPollerRequest(join_token=token, svid_csr=csr(svid_key), ca_csr=csr(ca_key, ca=True)), timeout=30)
    chain = b"".join(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in reply.svid_chain)
    key = svid_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    credentials = grpc.ssl_channel_credentials(root_certificates=bundle, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(f"127.0.0.1:{core.grpc}", credentials)


def scenario(binary, url, label, extra, streams, window, pb, pb_grpc):
    database = psql(url, "SELECT 'muster_idle_' || floor(random() * 1e9)::bigint")
    psql(url, f"CREATE DATABASE {database}")
    core = Core(binary, ["--database", url.rsplit("/", 1)[0] + "/" + database, *extra])
    channels, calls = [], []
    try:
        for index in range((streams + STREAMS_PER_POLLER - 1) // STREAMS_PER_POLLER):
            channel = attest(core, pb, pb_grpc, f"bench-{index}")
            channels.append(channel)
            stub = pb_grpc.CoreOnboardingStub(channel)
            for _ in range(min(STREAMS_PER_POLLER, streams - len(calls))):
                calls.append(stub.WatchPackages(pb.WatchPackagesRequest(cursor=0)))
        time.sleep(10)  # every stream past its snapshot and waiting
        broken = [call for call in calls if call.done()]
        assert not broken, f"{len(broken)} streams ended: {broken[0].code()} {broken[0].details()}"
        count = f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"
        # pg_stat counters are flushed by each backend at most once a second; read them after a pause.
        statements, cpu, started = int(psql(url, count)), core.cpu_seconds(), time.time()
        time.sleep(window)
        elapsed = time.time() - started
        statements, cpu = int(psql(url, count)) - statements, core.cpu_seconds() - cpu
        # The count queries themselves run in the `postgres` database, not this one.
        rss = int(next(line.split()[1] for line in open(f"/proc/{core.process.pid}/status") if line.startswith("VmRSS")))
        return {"scenario": label, "streams": len(calls), "pollers": len(channels), "window_s": round(elapsed, 1),
                "core_cpu_percent": round(100 * cpu / elapsed, 1), "db_statements_per_s": round(statements / elapsed, 1),
                "core_rss_mib": round(rss / 1024, 1)}
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()
        core.stop()
        psql(url, f"DROP DATABASE IF EXISTS {database}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres", required=True, help="URL of a PostgreSQL server's postgres database (databases are created)")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--window", type=float, default=30)
    args = parser.parse_args()
    pb, pb_grpc = stubs()
    results = [
        scenario(args.bin, args.postgres, "before: every stream polls every 0.5 s", ["--event-poll-interval", "0.5"], args.streams, args.window, pb, pb_grpc),
        scenario(args.bin, args.postgres, "after: event hub wake-ups, 30 s safety poll", [], args.streams, args.window, pb, pb_grpc),
    ]
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
