"""Scale benchmark: N pollers on one Core (or on two Core replicas sharing a PostgreSQL database).

The pollers are attested for real once (AttestPoller with their own keys, SVIDs of 24 h) and cached with Core's data
directory, so later runs start from a copy of that directory. Each scenario starts a fresh release `muster-core` on
a copy and measures, in one run, side by side:

  * baseline: Core RSS and CPU with no stream open; agent packages created one at a time by one HTTP client (in a
    process of its own, so that it does not wait on Python's lock for the pollers' streams in this one);
  * connected: N pollers, each as `muster-poller` behaves: one grpc.aio channel (mTLS, its own SVID) with HTTP/2
    keepalive pings every 20 s, one WatchPackages stream, and a heartbeat (an empty ReportActivations) every 30 s
    per poller, staggered, while its stream is not live (a Core that sends the live marker gets none once the
    stream has caught up; an older Core, which sends no marker, gets them all along). Once every stream is open and
    the baseline's packages have all been pulled (each a write transaction; a Core still writing them is not idle),
    measured: Core RSS per open stream beyond the baseline, idle CPU over a window, database transactions per second
    (PostgreSQL only: pg_stat_database's commits + rollbacks), a burst of agent packages spread over the pollers
    (create rate from one client beside the baseline's, and when the last one reached its poller), then revocations
    one at a time to pollers picked at random (from the revoke call until the poller's stream has it, p50/p99), and
    whether every stream is still open;
  * with --tool-yielding, connected, the tool yielding: the same burst again with this tool's threads at nice 19, so
    that the pollers' side takes only the CPU that Core and the client leave, as pollers on machines of their own
    would (not with --creator same-process, where the client is one of those threads);
  * after: once every stream has ended, the same burst with none connected again; the connected rate is reported
    against the mean of the two baselines (the host's speed drifts over a run, and the table has grown).

For each burst with a client in its own process: Core's CPU per create (all replicas) and this tool's (the pollers'
side); for the first two, on PostgreSQL, the database's transactions
per create and, where the server loads pg_stat_statements (scripts/test-postgres.sh does), its statements per create
(every round trip, BEGIN and COMMIT included). For the three measured bursts (none connected, connected, none again):
where the machine's CPU went per create, by party (Core, the PostgreSQL server's processes, this tool, the rest),
how busy the machine was and how much of its time the hypervisor took (steal), so a gap between the rates can be
set against the CPU each burst cost on the two shared cores. With --perf DIR, `perf record -g` of every Core process during each of
those bursts, into DIR/none-connected.data and DIR/connected.data.

Usage: python3 Benchmarks/scale_bench.py --bin PATH/muster-core --cache DIR [--pollers 10000] [--burst 10000]
           [--revocations 200] [--window 60] [--connecting 64] [--no-heartbeats | --connect-only]
           [--creator own-process|same-process] [--tool-yielding] [--statements]
           [--postgres URL --replicas 2] [--perf DIR]
"""
import argparse
import asyncio
import concurrent.futures
import http.client
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
import flood_bench  # noqa: E402
from flood_bench import percentile, stubs  # noqa: E402
from idle_streams_bench import Core as IdleCore, csr, psql  # noqa: E402

SVID_TTL = 86400
HEARTBEAT = 30.0
CONNECT_TIMEOUT = 20.0  # gRPC's own connect deadline
# muster-poller's channel to Core: a ping every 20 s, 10 s to answer, on a stream that carries no data too.
KEEPALIVE = [("grpc.keepalive_time_ms", 20000), ("grpc.keepalive_timeout_ms", 10000),
             ("grpc.http2.max_pings_without_data", 0)]


class Core(flood_bench.Core):
    """flood_bench's Core launcher over `data` with 24 h SVIDs and `database` (None: the data dir's SQLite file);
    one HTTP connection per calling thread."""

    def __init__(self, binary, data, database=None):
        super().__init__(binary, ["--svid-ttl", str(SVID_TTL), *(["--database", database] if database else [])], data)
        self.local = threading.local()

    def call(self, method, path, body=None):
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.http, timeout=120)
        self.local.connection.request(method, path, body=json.dumps(body) if body is not None else None,
                                      headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        response = self.local.connection.getresponse()
        payload = response.read()
        assert response.status < 300, (response.status, payload[:300])
        return payload

    def rss_kib(self):
        return int(next(line.split()[1] for line in open(f"/proc/{self.process.pid}/status") if line.startswith("VmRSS")))

    cpu_seconds = IdleCore.cpu_seconds

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10).read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name)


def attest_all(core, pb, pb_grpc, count):
    """Attests `count` pollers for real (4 client threads); returns their names, keys and chains."""
    bundle = open(f"{core.data}/ca/bundle.pem", "rb").read()
    local = threading.local()

    def attest(index):
        if not hasattr(local, "stub"):
            local.stub = pb_grpc.CoreOnboardingStub(grpc.secure_channel(
                f"127.0.0.1:{core.grpc}", grpc.ssl_channel_credentials(root_certificates=bundle)))
        name = f"scale-{index}"
        package = json.loads(core.call("POST", "/api/edge-packages", {"name": name, "component_type": "poller"}))
        archive = tarfile.open(fileobj=io.BytesIO(core.call("GET", f"/api/edge-packages/{package['id']}/download")))
        token = archive.extractfile("join-token").read().decode().strip()
        svid_key, ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        reply = local.stub.AttestPoller(pb.AttestPollerRequest(join_token=token, svid_csr=csr(svid_key), ca_csr=csr(ca_key, ca=True)),
                                        timeout=60)
        chain = b"".join(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in reply.svid_chain)
        key = svid_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return {"name": name, "key": key.decode(), "chain": chain.decode()}

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(attest, range(count)))


def prepare(binary, cache, count, pb, pb_grpc):
    """Core's data dir with `count` attested pollers, from the cache when it is there and fresh enough."""
    manifest = os.path.join(cache, "pollers.json")
    if os.path.exists(manifest):
        saved = json.load(open(manifest))
        if len(saved["pollers"]) >= count and saved["expires"] > time.time() + 3 * 3600:
            return saved["pollers"][:count]
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    core = Core(binary, os.path.join(cache, "core"))
    started = time.time()
    try:
        pollers = attest_all(core, pb, pb_grpc, count)
    finally:
        core.stop()
    print(f"# attested {count} pollers in {time.time() - started:.0f} s (cached in {cache})", file=sys.stderr)
    json.dump({"expires": started + SVID_TTL, "pollers": pollers}, open(manifest, "w"))
    return pollers


class Fleet:
    """N pollers in one asyncio loop on its own thread: channels, package streams, heartbeats, arrival times."""

    def __init__(self, pb, pb_grpc, pollers, bundle, targets, connecting, heartbeat=True):
        self.pb, self.pb_grpc, self.pollers, self.bundle, self.targets = pb, pb_grpc, pollers, bundle, targets
        self.heartbeat = heartbeat
        self.connecting_limit = connecting
        self.connect_failures = 0
        self.connected = 0
        self.live = 0  # streams that received Core's live marker
        self.heartbeats_sent = 0
        self.connect_only = False
        self.arrivals = {}  # package id -> (kind, time of arrival)
        self.ended = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tasks = []

    async def poller(self, index, poller, address):
        """One poller as `muster-poller` behaves: connect, watch, and after a connect that fails within
        CONNECT_TIMEOUT connect again after the poller's own jittered backoff (0.5 s doubling to 10 s). At most
        `--connecting` handshakes are in flight from this process at once (a fleet that connects gradually)."""
        credentials = grpc.ssl_channel_credentials(root_certificates=self.bundle, private_key=poller["key"].encode(),
                                                   certificate_chain=poller["chain"].encode())
        attempt, stub, live = 0, [None], [False]
        heartbeat = asyncio.ensure_future(self.heartbeats(stub, live))
        try:
            while True:
                channel = grpc.aio.secure_channel(address, credentials, options=KEEPALIVE)
                try:
                    async with self.connecting:
                        await asyncio.wait_for(channel.channel_ready(), timeout=CONNECT_TIMEOUT)
                    stub[0] = self.pb_grpc.CoreOnboardingStub(channel)
                    self.connected += 1
                    if self.connect_only:
                        await asyncio.Event().wait()  # hold the connection, no call on it, until cancelled
                    async for update in stub[0].WatchPackages(self.pb.WatchPackagesRequest(cursor=0)):
                        kind = update.WhichOneof("change")
                        if kind == "pending":
                            self.arrivals[update.pending.id] = ("pending", time.perf_counter())
                        elif kind == "revoked":
                            self.arrivals[update.revoked.package_id] = ("revoked", time.perf_counter())
                        elif kind is None and not live[0]:
                            live[0] = True
                            self.live += 1
                    self.ended.append((poller["name"], "ended"))
                    return
                except asyncio.TimeoutError:
                    self.connect_failures += 1
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.CANCELLED:
                        self.ended.append((poller["name"], f"{error.code()} {error.details()}"))
                    return
                finally:
                    stub[0] = None
                    if live[0]:
                        live[0] = False
                        self.live -= 1
                    await channel.close()
                ceiling = min(10.0, 0.5 * 2 ** attempt)
                attempt = min(attempt + 1, 16)
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
        finally:
            heartbeat.cancel()

    async def heartbeats(self, stub, live):
        """An empty ReportActivations every 30 s (staggered), on the poller's current channel once it has one and
        while its stream is not live; none with `--no-heartbeats` (to split the idle cost of open streams from that
        of the heartbeats)."""
        if not self.heartbeat:
            return
        await asyncio.sleep(random.uniform(0, HEARTBEAT))
        while True:
            if stub[0] is not None and not live[0]:
                self.heartbeats_sent += 1
                try:
                    await stub[0].ReportActivations(self.pb.ReportActivationsRequest(), timeout=60)
                except grpc.aio.AioRpcError as error:
                    self.ended.append(("heartbeat", f"{error.code()} {error.details()}"))
            await asyncio.sleep(HEARTBEAT)

    def open(self):
        async def start():
            self.connecting = asyncio.Semaphore(self.connecting_limit or len(self.pollers))
            for index, poller in enumerate(self.pollers):
                address = self.targets[index % len(self.targets)]
                self.tasks.append(asyncio.ensure_future(self.poller(index, poller, address)))
                if index % 200 == 199:
                    await asyncio.sleep(0.2)  # a steady connect rate, not one burst of handshakes
        asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    def close(self):
        async def stop():
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=300)
        self.loop.call_soon_threadsafe(self.loop.stop)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def create_packages(port, token, names, count, offset):
    """`count` agent packages created one at a time over one HTTP connection, round-robin over the pollers `names`;
    returns ([(id, time answered)], seconds, creates/s). Times are `time.perf_counter()` (CLOCK_MONOTONIC on Linux),
    comparable across this tool's processes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids, started = [], time.perf_counter()
    for index in range(count):
        body = {"name": f"a{offset}-{index}", "component_type": "agent", "poller_id": names[(index + offset) % len(names)]}
        connection.request("POST", "/api/edge-packages", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        payload = response.read()
        assert response.status < 300, (response.status, payload[:300])
        ids.append((json.loads(payload)["id"], time.perf_counter()))
    seconds = time.perf_counter() - started
    connection.close()
    return ids, seconds, count / seconds


class Profile:
    """`perf record -g` on every Core process for the length of a `with` block, into DIR/NAME.data (no-op without
    DIR): the two creation bursts recorded this way compare per create, by library or symbol."""

    def __init__(self, folder, name, cores):
        self.path = os.path.join(folder, f"{name}.data") if folder else None
        self.cores = cores

    def __enter__(self):
        if self.path:
            pids = ",".join(str(c.process.pid) for c in self.cores)
            self.perf = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499", "-p", pids, "-o", self.path],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        return self

    def __exit__(self, *error):
        if self.path:
            self.perf.send_signal(signal.SIGINT)
            self.perf.wait(timeout=120)


def tool_cpu_seconds():
    """CPU time of this process, every thread (the pollers' streams and heartbeats, and the tool's own bookkeeping);
    the operator's client in its own process is not counted."""
    times = os.times()
    return times.user + times.system


def machine_cpu_seconds():
    """The whole machine's CPU time over every core: busy (user, nice, system, irq, softirq) and stolen by the
    hypervisor (time this VM wanted a core and the host gave it to someone else), from /proc/stat."""
    fields = [int(value) for value in open("/proc/stat").readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / ticks, fields[7] / ticks


def postgres_cpu_seconds():
    """CPU time of the processes named postgres on this machine: the test server the benchmark runs on."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name, rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)
        except OSError:
            continue  # ended meanwhile
        if name.split("(", 1)[1] == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Accounting:
    """Where the machine's CPU went over one phase, by party: Core (every replica), the PostgreSQL server, this tool
    (the pollers' side), and the rest (the operator's client, the kernel's network work, anything else on the host);
    with how busy the machine was and how much time the hypervisor took from it."""

    def __init__(self, cores, postgres):
        self.cores, self.postgres = cores, postgres
        self.started = time.perf_counter()
        (self.busy, self.stolen), self.core = machine_cpu_seconds(), sum(c.cpu_seconds() for c in cores)
        self.db, self.tool = postgres_cpu_seconds() if postgres else 0.0, tool_cpu_seconds()

    def report(self, results, phase, count):
        seconds = time.perf_counter() - self.started
        busy, stolen = (now - then for now, then in zip(machine_cpu_seconds(), (self.busy, self.stolen)))
        core = sum(c.cpu_seconds() for c in self.cores) - self.core
        db = postgres_cpu_seconds() - self.db if self.postgres else 0.0
        tool = tool_cpu_seconds() - self.tool
        results[f"machine_busy_percent_{phase}"] = round(100 * busy / seconds, 1)
        results[f"machine_stolen_percent_{phase}"] = round(100 * stolen / seconds, 1)
        per_create = lambda value: round(1000 * value / count, 3)
        if self.postgres:
            results[f"db_server_cpu_ms_per_create_{phase}"] = per_create(db)
        results[f"core_cpu_ms_per_create_{phase}"] = per_create(core)
        results[f"tool_cpu_ms_per_create_{phase}"] = per_create(tool)
        results[f"other_cpu_ms_per_create_{phase}"] = per_create(busy - core - db - tool)
        results[f"machine_cpu_ms_per_create_{phase}"] = per_create(busy)


def renice_this_process(level):
    """Sets the nice level of every thread of this process (Linux sets it per thread; threads started later inherit
    their starter's)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(task), level)
        except ProcessLookupError:
            pass  # a thread that ended meanwhile


def track_statements(url):
    """Whether `url`'s server counts statements (pg_stat_statements loaded at its start); creates the view in that
    database if so."""
    try:
        psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        psql(url, "SELECT count(*) FROM pg_stat_statements")
        return True
    except Exception as error:  # noqa: BLE001 - any failure means the server does not track them
        print(f"# statements not counted: {error}", file=sys.stderr)
        return False


def create_burst(core, pollers, count, offset, creator=None):
    """`count` agent packages from one operator's client: in `creator` (a one-process pool: the client in a process
    of its own, as an operator's is) or, with none, on the calling thread of this process, where it shares Python's
    lock with the thread that receives every poller's stream."""
    names = [poller["name"] for poller in pollers]
    if creator is None:
        return create_packages(core.http, core.token, names, count, offset)
    return creator.submit(create_packages, core.http, core.token, names, count, offset).result()


def scenario(args, pollers, pb, pb_grpc):
    label = f"{args.replicas} replica{'s' if args.replicas > 1 else ''} on PostgreSQL" if args.postgres else "SQLite"
    work = os.path.join(args.cache, "run")
    shutil.rmtree(work, ignore_errors=True)
    database, url = None, None
    if args.postgres:
        name = "muster_scale_" + str(random.randrange(10**9))
        psql(args.postgres, f"CREATE DATABASE {name}")
        url = args.postgres.rsplit("/", 1)[0] + "/" + name
        database = url
    cores = []
    # The operator's client creates packages from a process of its own unless told otherwise: in this process its
    # thread would wait on Python's lock for the thread that receives 10,000 streams, and measure this tool.
    creator = None if args.creator == "same-process" else concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        # Every replica gets the CA and the token key of the cached data dir. On SQLite the cached store holds the
        # attested pollers; a new PostgreSQL database does not, so there they are attested again through replica 0.
        for replica in range(args.replicas):
            data = os.path.join(work, f"core-{replica}")
            shutil.copytree(os.path.join(args.cache, "core"), data)
            if database:
                # The new database gets its own admin token from replica 0; the others use that one.
                os.remove(os.path.join(data, "muster.db"))
                os.remove(os.path.join(data, "admin.token"))
                if cores:
                    shutil.copy(os.path.join(cores[0].data, "admin.token"), data)
            cores.append(Core(args.bin, data, database))
        if database:
            started = time.time()
            pollers = attest_all(cores[0], pb, pb_grpc, len(pollers))
            print(f"# attested {len(pollers)} pollers on PostgreSQL in {time.time() - started:.0f} s", file=sys.stderr)
        first = cores[0]
        results = {"scenario": label, "pollers": len(pollers), "creator": args.creator,
                   "heartbeats": not args.no_heartbeats and not args.connect_only, "streams": not args.connect_only}
        transactions = lambda: int(psql(args.postgres, "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                             f"WHERE datname = '{url.rsplit('/', 1)[1]}'")) if url else 0
        # Statements (round trips; BEGIN and COMMIT count) where the server tracks them: scripts/test-postgres.sh
        # loads pg_stat_statements.
        tracked = bool(url) and track_statements(url)
        statement_count = lambda: int(psql(url, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                                " AND query NOT LIKE '%pg_stat_statements%'")) if tracked else 0
        # Each statement's calls (BEGIN and COMMIT, each statement text), to say which ones a create costs.
        per_statement = lambda: dict(
            (line.rsplit("|", 1)[0], int(line.rsplit("|", 1)[1])) for line in psql(
                url, "SELECT regexp_replace(query, '\\s+', ' ', 'g') || '|' || calls FROM pg_stat_statements "
                     "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                     "AND query NOT LIKE '%pg_stat_statements%'").splitlines() if "|" in line) if tracked else {}
        counted, said, each, account = transactions(), statement_count(), per_statement(), Accounting(cores, url)
        with Profile(args.perf, "none-connected", cores):
            _, seconds, rate = create_burst(first, pollers, args.burst, 0, creator)
        account.report(results, "none_connected", args.burst)
        results["create_rate_none_connected"] = round(rate, 1)
        by_text = lambda before: {
            query[:120]: round(calls / args.burst, 2)
            for query, calls in sorted(((q, c - before.get(q, 0)) for q, c in per_statement().items()),
                                       key=lambda item: -item[1]) if calls / args.burst >= 0.05}
        if args.statements and tracked:
            results["db_statements_per_create_none_connected_by_text"] = by_text(each)
        if url:
            results["db_transactions_per_create_none_connected"] = round((transactions() - counted) / args.burst, 2)
        if tracked:
            results["db_statements_per_create_none_connected"] = round((statement_count() - said) / args.burst, 2)
        # The same number again through the bulk endpoint, 1,000 a request (one transaction each).
        started = time.perf_counter()
        for chunk in range(0, args.burst, 1000):
            body = {"items": [{"name": f"bulk-{index}", "component_type": "agent",
                               "poller_id": pollers[index % len(pollers)]["name"]}
                              for index in range(chunk, min(args.burst, chunk + 1000))]}
            first.call("POST", "/api/edge-packages/bulk", body)
        results["bulk_create_rate_none_connected"] = round(args.burst / (time.perf_counter() - started), 1)
        time.sleep(5)
        results["baseline_rss_mib"] = round(sum(c.rss_kib() for c in cores) / 1024, 1)
        cpu = [c.cpu_seconds() for c in cores]
        time.sleep(10)
        results["baseline_cpu_percent"] = round(100 * sum(c.cpu_seconds() - s for c, s in zip(cores, cpu)) / 10, 1)

        bundle = open(f"{first.data}/ca/bundle.pem", "rb").read()
        fleet = Fleet(pb, pb_grpc, pollers, bundle, [f"127.0.0.1:{c.grpc}" for c in cores], args.connecting,
                      heartbeat=not args.no_heartbeats and not args.connect_only)
        fleet.connect_only = args.connect_only
        opened = time.perf_counter()
        fleet.open()
        open_streams = lambda: sum(c.metric("muster_package_streams") for c in cores)
        if args.connect_only:
            # Connections alone (mTLS handshaken, HTTP/2 up, no call): what a poller costs Core before its stream.
            wait_for(lambda: fleet.connected >= len(pollers), 600, "every connection open")
            results["open_seconds"] = round(time.perf_counter() - opened, 1)
            time.sleep(max(20.0, HEARTBEAT))
            rss = sum(c.rss_kib() for c in cores)
            results["connected_rss_mib"] = round(rss / 1024, 1)
            results["rss_kib_per_connection"] = round((rss - results["baseline_rss_mib"] * 1024) / len(pollers), 1)
            cpu, started = [c.cpu_seconds() for c in cores], time.time()
            time.sleep(args.window)
            results["idle_cpu_percent"] = round(
                100 * sum(c.cpu_seconds() - s for c, s in zip(cores, cpu)) / (time.time() - started), 1)
            fleet.close()
            return results
        try:
            wait_for(lambda: open_streams() >= len(pollers), 600, "every stream open")
        except AssertionError:
            raise AssertionError(f"{open_streams():.0f} of {len(pollers)} streams open after 600 s; "
                                 f"{len(fleet.ended)} ended, first: {fleet.ended[:1]}")
        results["open_seconds"] = round(time.perf_counter() - opened, 1)
        results["connects_timed_out_and_retried"] = fleet.connect_failures
        # The snapshot of each stream carries the baseline burst's packages, each moved to Delivered as it is sent (a
        # write transaction each): wait until none is left Created, so the idle window measures an idle Core.
        pending = lambda: json.loads(first.call("GET", "/api/edge-packages?status=created&type=agent&limit=1"))["items"]
        wait_for(lambda: not pending(), 900, "every pending package pulled by its poller")
        results["snapshots_delivered_seconds"] = round(time.perf_counter() - opened, 1)
        time.sleep(max(20.0, HEARTBEAT))
        rss = sum(c.rss_kib() for c in cores)
        results["connected_rss_mib"] = round(rss / 1024, 1)
        results["rss_kib_per_stream"] = round((rss - results["baseline_rss_mib"] * 1024) / len(pollers), 1)
        statements = int(psql(args.postgres, f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{url.rsplit('/', 1)[1]}'")) if url else None
        cpu, started, sent = [c.cpu_seconds() for c in cores], time.time(), fleet.heartbeats_sent
        time.sleep(args.window)
        elapsed = time.time() - started
        results["streams_live"] = fleet.live
        results["idle_heartbeats_per_s"] = round((fleet.heartbeats_sent - sent) / elapsed, 1)
        results["idle_cpu_percent"] = round(100 * sum(c.cpu_seconds() - s for c, s in zip(cores, cpu)) / elapsed, 1)
        if url:
            now = int(psql(args.postgres, f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{url.rsplit('/', 1)[1]}'"))
            results["idle_db_statements_per_s"] = round((now - statements) / elapsed, 1)

        counted, said, each, account = transactions(), statement_count(), per_statement(), Accounting(cores, url)
        with Profile(args.perf, "connected", cores):
            ids, seconds, rate = create_burst(first, pollers, args.burst, 1, creator)
            results["create_rate_connected"] = round(rate, 1)
            wait_for(lambda: all(i in fleet.arrivals for i, _ in ids), 600, "the burst to reach its pollers")
        # Core's CPU for the burst and its delivery (the streams' pulls and sends), idle time included.
        account.report(results, "connected", args.burst)
        if url:
            results["db_transactions_per_create_connected"] = round((transactions() - counted) / args.burst, 2)
        if tracked:
            results["db_statements_per_create_connected"] = round((statement_count() - said) / args.burst, 2)
        if args.statements and tracked:
            results["db_statements_per_create_connected_by_text"] = by_text(each)
        last = max(fleet.arrivals[i][1] for i, _ in ids)
        results["burst_reached_pollers_s"] = round(last - (ids[0][1] - seconds / len(ids)), 1)
        lags = [(fleet.arrivals[i][1] - at) * 1000 for i, at in ids]
        results["burst_lag_ms_p50_p99"] = [round(statistics.median(lags), 1), round(percentile(lags, 99), 1)]

        latencies = []
        for package_id, _ in random.sample(ids, min(args.revocations, len(ids))):
            started = time.perf_counter()
            first.call("POST", f"/api/edge-packages/{package_id}/revoke", {})
            wait_for(lambda: fleet.arrivals.get(package_id, ("",))[0] == "revoked", 30, "a revocation")
            latencies.append((fleet.arrivals[package_id][1] - started) * 1000)
        results["revocation_ms_p50_p99"] = [round(statistics.median(latencies), 1), round(percentile(latencies, 99), 1)]

        if args.tool_yielding and creator is not None:
            # The same burst again with this tool's threads at the lowest priority (nice 19): the 10,000 pollers
            # would run on machines of their own, and here they share Core's two cores in the connected phases only.
            # Yielding, they take only the CPU Core and the client leave; their streams still receive every package.
            cpu, tool = [c.cpu_seconds() for c in cores], tool_cpu_seconds()
            renice_this_process(19)
            try:
                yielding, _, rate = create_burst(first, pollers, args.burst, 3, creator)
            finally:
                renice_this_process(0)
            results["create_rate_connected_tool_yielding"] = round(rate, 1)
            results["core_cpu_ms_per_create_connected_tool_yielding"] = round(
                1000 * sum(c.cpu_seconds() - s for c, s in zip(cores, cpu)) / args.burst, 3)
            results["tool_cpu_ms_per_create_connected_tool_yielding"] = round(
                1000 * (tool_cpu_seconds() - tool) / args.burst, 3)
            wait_for(lambda: all(i in fleet.arrivals for i, _ in yielding), 600, "the yielding burst to reach its pollers")
        results["streams_open_at_end"] = int(sum(c.metric("muster_package_streams") for c in cores))
        results["streams_dropped"] = len([e for e in fleet.ended if e[0] != "heartbeat"])
        results["heartbeats_failed"] = len([e for e in fleet.ended if e[0] == "heartbeat"])
        if fleet.ended:
            results["first_failure"] = fleet.ended[0]
        fleet.close()
        # The rate with none connected again, now that the streams have ended: this host's speed drifts over a run,
        # and the table is larger now, so the connected rate is set against both baselines' mean.
        wait_for(lambda: open_streams() == 0, 300, "every stream ended")
        account = Accounting(cores, url)
        _, _, after = create_burst(first, pollers, args.burst, 2, creator)
        account.report(results, "none_connected_after", args.burst)
        results["create_rate_none_connected_after"] = round(after, 1)
        baseline = (results["create_rate_none_connected"] + after) / 2
        results["create_rate_ratio"] = round(results["create_rate_connected"] / baseline, 2)
        if "create_rate_connected_tool_yielding" in results:
            results["create_rate_ratio_tool_yielding"] = round(
                results["create_rate_connected_tool_yielding"] / baseline, 2)
        return results
    finally:
        if creator:
            creator.shutdown()
        for core in cores:
            core.stop()
        if url:
            psql(args.postgres, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--cache", required=True, help="where attested pollers and Core's data dir are kept between runs")
    parser.add_argument("--pollers", type=int, default=10000)
    parser.add_argument("--burst", type=int, default=10000)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--postgres", help="URL of a PostgreSQL server's postgres database (a database is created)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--connecting", type=int, default=64,
                        help="most handshakes in flight at once (0: no bound, every poller connects as the tool "
                             "starts it, 1,000 a second, and retries on the poller's backoff)")
    parser.add_argument("--connect-only", action="store_true",
                        help="open the mTLS connections and make no call on them: Core's cost per connection alone")
    parser.add_argument("--creator", choices=["own-process", "same-process"], default="own-process",
                        help="where the operator's client that creates packages one at a time runs: a process of its "
                             "own (default) or a thread of this one, beside the pollers' streams (as before 2026-12-06)")
    parser.add_argument("--perf", metavar="DIR",
                        help="record Core with perf during the first two creation bursts, into DIR/none-connected.data "
                             "and DIR/connected.data")
    parser.add_argument("--statements", action="store_true",
                        help="on PostgreSQL with pg_stat_statements, also each statement text's calls per create in "
                             "the first two bursts")
    parser.add_argument("--tool-yielding", action="store_true",
                        help="after the revocations, the same burst again with this tool's threads at nice 19 (the "
                             "pollers' side takes only the CPU Core and the client leave)")
    parser.add_argument("--no-heartbeats", action="store_true",
                        help="open the streams but send no heartbeat (the idle cost of the streams alone)")
    args = parser.parse_args()
    # Each process holds one socket a poller (and Core its database files): the hard limit must allow that.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard > args.pollers + 1000, f"open-file limit {hard} is too low"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by Core
    pb, pb_grpc = stubs()
    pollers = prepare(args.bin, args.cache, args.pollers, pb, pb_grpc)
    print(json.dumps(scenario(args, pollers, pb, pb_grpc)))


if __name__ == "__main__":
    main()
