"""NATS, two Core replicas on one PostgreSQL, the database going away and coming back."""
import asyncio
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import PG_URL, ROOT, Core, free_port, new_postgres_database, open_archive, replica_pair

needs_postgres = pytest.mark.skipif(not PG_URL, reason="MUSTER_TEST_POSTGRES_URL not set (scripts/test.sh starts one)")


def poller_channel(poller, core):
    """A gRPC channel to `core` with the attested (and stopped) `poller`'s own SVID, as its `muster-poller` has."""
    import grpc
    identity = poller.directory / "identity"
    credentials = grpc.ssl_channel_credentials(root_certificates=(identity / "bundle.pem").read_bytes(),
                                               private_key=(identity / "svid.key").read_bytes(),
                                               certificate_chain=(identity / "svid.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", credentials)


@pytest.fixture
def nats_server(tmp_path):
    port = free_port()
    process = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    yield f"nats://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_a_nats_subscriber_receives_each_event(nats_server):
    import nats

    received = []

    async def subscribe_and_act():
        client = await nats.connect(nats_server)
        subscription = await client.subscribe("muster.events.>")
        await client.flush()
        core = Core(extra=["--nats", nats_server, "--create-rate-limit", "1000"])
        try:
            loop = asyncio.get_running_loop()
            poller = await loop.run_in_executor(None, lambda: core.create("edge-1", "poller").json())
            agent = await loop.run_in_executor(None, lambda: core.create("a1").json())
            await loop.run_in_executor(None, lambda: open_archive(core.api("GET", f"/api/edge-packages/{agent['id']}/download").body))
            await loop.run_in_executor(None, lambda: core.api("POST", f"/api/edge-packages/{agent['id']}/revoke"))
            deadline = time.time() + 15
            while len(received) < 4 and time.time() < deadline:
                try:
                    message = await subscription.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                received.append((message.subject, json.loads(message.data)))
            return poller, agent
        finally:
            core.stop()
            await client.close()

    poller, agent = asyncio.run(subscribe_and_act())
    assert [subject for subject, _ in received] == [
        "muster.events.package.created", "muster.events.package.created",
        "muster.events.package.delivered", "muster.events.package.revoked",
    ]
    ids = [body["id"] for _, body in received]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert received[0][1]["subject"] == poller["id"] and received[3][1]["data"]["status"] == "revoked"
    assert all("mjt_" not in json.dumps(body) for _, body in received)


@needs_postgres
def test_two_core_replicas_share_one_postgres():
    database = new_postgres_database()
    a, b = replica_pair(database)
    try:
        assert a.create("edge-1", "poller").status == 201
        package = b.create("a1").json()
        assert a.api("GET", f"/api/edge-packages/{package['id']}").json()["name"] == "a1"
        same = b.create("edge-1", "poller")
        assert same.status == 409
        results = []

        def grab(core):
            results.append(core.api("GET", f"/api/edge-packages/{package['id']}/download"))

        threads = [threading.Thread(target=grab, args=((a, b)[i % 2],)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status for r in results) == [200] + [410] * 19
        open_archive(next(r.body for r in results if r.status == 200))
        # Events written by A reach an SSE reader on B.
        from test_lifecycle import read_events
        events = read_events(b, after=0, count=3)
        assert [e[1] for e in events] == ["package.created", "package.created", "package.delivered"]
        assert [e[0] for e in events] == sorted(e[0] for e in events)
        # A reader on B already waiting is woken by A's commit (PostgreSQL NOTIFY), not by its 30 s safety read.
        woken = []
        reader = threading.Thread(target=lambda: woken.extend(read_events(b, after=events[-1][0], count=1)))
        reader.start()
        time.sleep(1.5)
        started = time.monotonic()
        assert a.create("late-1", "poller").status == 201
        reader.join(timeout=20)
        elapsed = time.monotonic() - started
        assert woken and woken[0][1] == "package.created" and json.loads(woken[0][2])["name"] == "late-1", woken
        assert elapsed < 10, f"B's reader took {elapsed:.1f} s: it was not woken across replicas"
    finally:
        a.stop()
        b.stop()


@needs_postgres
def test_database_down_is_503_and_core_recovers_by_itself():
    database = new_postgres_database()
    core = Core(database=database, extra=["--create-rate-limit", "1000"])
    script = str(ROOT / "scripts/test-postgres.sh")
    # Stop and restart exactly the server this run uses (its port decides its directory).
    os.environ["MUSTER_TEST_PG_PORT"] = PG_URL.rsplit(":", 1)[1].split("/")[0]
    try:
        assert core.create("edge-1", "poller").status == 201
        subprocess.run([script, "stop"], check=True)
        try:
            listing = core.api("GET", "/api/edge-packages")
            assert listing.status == 503 and listing.json()["error"] == "unavailable"
            assert "database" in listing.json()["message"]
            created = core.create("a1")
            assert created.status == 503
            ready = core.request("GET", "/readyz")
            assert ready.status == 503 and ready.json()["error"] == "unavailable"
            assert core.request("GET", "/healthz").status == 200
        finally:
            subprocess.run([script, "start-again"], check=True)
        deadline = time.time() + 30
        while core.request("GET", "/readyz").status != 200:
            assert time.time() < deadline, "Core did not become ready after the database returned"
            time.sleep(0.3)
        names = [i["name"] for i in core.api("GET", "/api/edge-packages").json()["items"]]
        assert names == ["edge-1"], "a request made while the database was down left something behind"
        assert core.create("a1").status == 201
        assert core.process.poll() is None
    finally:
        core.stop()


@needs_postgres
def test_a_poller_revoked_on_one_replica_has_its_heartbeats_refused_by_the_other(tmp_path, onboarding):
    """A heartbeat may be admitted on a verdict Core keeps (PollerStandings, up to two minutes); a revocation made on
    replica A must end that verdict on replica B within seconds: B's package feed hears of it (NOTIFY) and forgets
    it. Calls that change state (here a renewal) read the store every time."""
    import grpc
    from relay import Poller, new_key_and_csr, wait_for
    pb, grpc_mod = onboarding
    a, b = replica_pair(new_postgres_database())
    try:
        poller = Poller(a, tmp_path / "poller", name="edge-hb")
        poller.stop()
        with poller_channel(poller, b) as channel:
            stub = grpc_mod.CoreOnboardingStub(channel)

            def heartbeat():
                try:
                    stub.ReportActivations(pb.ReportActivationsRequest(), timeout=10)
                    return grpc.StatusCode.OK
                except grpc.RpcError as error:
                    return error.code()

            # The first heartbeat reads the store; the second is admitted on the verdict B keeps.
            assert heartbeat() == grpc.StatusCode.OK and heartbeat() == grpc.StatusCode.OK
            assert a.api("POST", f"/api/edge-packages/{poller.package_id}/revoke").status == 200
            started = time.monotonic()
            wait_for(lambda: heartbeat() == grpc.StatusCode.PERMISSION_DENIED, timeout=10,
                     what="replica B refusing the revoked poller's heartbeat")
            assert time.monotonic() - started < 10
            _, csr = new_key_and_csr()
            try:
                stub.RenewPoller(pb.RenewPollerRequest(svid_csr=csr), timeout=10)
                raise AssertionError("a revoked poller renewed its SVID")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # The refusal is audited (by the refusal auditor, just after the answer).
        wait_for(lambda: any(row["target_id"] == "edge-hb" and "revoked" in (row["reason"] or "")
                             for row in b.api("GET", "/api/audit?action=grpc.refused").json()["items"]),
                 what="the refused heartbeat's audit row")
    finally:
        a.stop()
        b.stop()


@needs_postgres
def test_a_package_created_on_one_replica_reaches_a_stream_on_the_other_at_once(tmp_path, onboarding):
    """Replica B's package feed is woken by A's commit of a creation (its NOTIFY names `package.created`), not by
    its 30 s safety read; and neither feed is woken by the Delivered transitions of the pulls, which no stream
    carries: one read of the events table per creation on each replica."""
    from relay import Poller, pump_updates
    from test_watch_packages import metric
    pb, grpc_mod = onboarding
    a, b = replica_pair(new_postgres_database())
    try:
        poller = Poller(a, tmp_path / "poller", name="edge-nt")
        poller.stop()
        with poller_channel(poller, b) as channel:
            call = grpc_mod.CoreOnboardingStub(channel).WatchPackages(pb.WatchPackagesRequest(cursor=0), timeout=120)
            updates = pump_updates(call)
            assert updates.get(timeout=20).WhichOneof("change") is None  # live: nothing pending
            reads = [metric(core, "muster_package_feed_reads_total") for core in (a, b)]
            for n in range(5):
                started = time.monotonic()
                made = a.create(f"agent-{n}", poller_id="edge-nt").json()["id"]
                assert updates.get(timeout=10).pending.id == made
                assert time.monotonic() - started < 5, "B's stream was not woken across replicas"
            # Each package was marked Delivered (on B) before it was sent; that commit's NOTIFY reaches A too, and
            # A's feed sleeps through it. A second for those notifications to arrive:
            time.sleep(1)
            grown = [metric(core, "muster_package_feed_reads_total") - before for core, before in zip((a, b), reads)]
            assert all(5 <= count <= 7 for count in grown), f"feed reads on A and B for 5 creations: {grown}"
            call.cancel()
    finally:
        a.stop()
        b.stop()
