"""CoreOnboarding.WatchPackages from grpcio with the attested poller's SVID: snapshot, live pending packages,
revocations, Delivered via poller, the live marker; a cert forged with the poller's own CA and a missing cert are refused.
Also ReportActivations straight from grpcio: idempotent, foreign packages refused, an empty report is the heartbeat."""
import datetime
import hashlib
import signal
import subprocess

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import free_port, open_archive
from relay import pump_updates, wait_for
from test_poller_attest import POLLER, start_poller


def attested_poller(core, tmp_path, name="edge-1"):
    package = core.create(name, "poller").json()
    tmp_path = tmp_path / name
    tmp_path.mkdir()
    archive = tmp_path / "poller.tar.gz"
    archive.write_bytes(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    open_archive(archive.read_bytes())
    state = tmp_path / "state"
    assert subprocess.run([POLLER, "install", "--package", str(archive), "--dir", str(state)], capture_output=True).returncode == 0
    process, output = start_poller(state, free_port())
    assert output is None, output
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    return state / "identity"


def channel_with(core, identity, key_pem=None, chain_pem=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(identity / "bundle.pem").read_bytes(),
        private_key=key_pem if key_pem is not None else (identity / "svid.key").read_bytes(),
        certificate_chain=chain_pem if chain_pem is not None else (identity / "svid.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", credentials)


def test_watch_streams_pending_packages_and_revocations(sqlite_core, tmp_path, onboarding):
    pb2, pb2_grpc = onboarding
    core = sqlite_core
    identity = attested_poller(core, tmp_path)
    a1 = core.create("a1").json()
    token = open_archive(core.api("GET", f"/api/edge-packages/{a1['id']}/download").body)["join-token"][1].decode().strip()
    a2 = core.create("c2", "checker").json()
    with channel_with(core, identity) as channel:
        stream = pb2_grpc.CoreOnboardingStub(channel).WatchPackages(pb2.WatchPackagesRequest(cursor=0), timeout=30)
        updates = pump_updates(stream)
        first, second = updates.get(timeout=10), updates.get(timeout=10)
        assert [first.pending.name, second.pending.name] == ["a1", "c2"]
        # Then, once, an update with no change: the stream has caught up and is live (the poller's contact).
        caught_up = updates.get(timeout=10)
        assert caught_up.WhichOneof("change") is None and caught_up.cursor >= second.cursor
        assert first.pending.token_hash == hashlib.sha256(token.encode()).digest()
        assert first.pending.spiffe_id == a1["spiffe_id"] and second.pending.component_type == "checker"
        assert core.api("GET", f"/api/edge-packages/{a2['id']}").json()["delivered_via"] == "poller"
        assert core.api("GET", f"/api/edge-packages/{a1['id']}").json()["delivered_via"] == "download"

        a3 = core.create("a3").json()
        live = updates.get(timeout=10)
        assert live.pending.id == a3["id"] and live.cursor > first.cursor
        core.api("POST", f"/api/edge-packages/{a1['id']}/revoke")
        revoked = updates.get(timeout=10)
        assert revoked.WhichOneof("change") == "revoked" and revoked.revoked.package_id == a1["id"]
        other = core.create("x9", "poller").json()
        assert other["status"] == "created"
        assert core.api("GET", f"/api/edge-packages/{a3['id']}").json()["status"] == "delivered"
        stream.cancel()
    pulls = core.api("GET", "/api/audit?action=package.pull").json()["items"]
    assert {p["actor"] for p in pulls} == {"poller:edge-1"} and len(pulls) == 2


def metric(core, name):
    lines = core.request("GET", "/metrics").body.decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.split(" ")[0] == name)


def test_one_read_of_each_event_serves_every_stream_and_reaches_only_its_poller(sqlite_core, tmp_path, onboarding):
    """Core's package feed: 20 streams of one poller and one of another; packages for the second reach only its
    stream, and the events table is read once per event for all 21 streams, not once per stream."""
    pb2, pb2_grpc = onboarding
    core = sqlite_core
    busy, quiet = attested_poller(core, tmp_path, "edge-1"), attested_poller(core, tmp_path, "edge-2")
    updates = {}
    with channel_with(core, busy) as busy_channel, channel_with(core, quiet) as quiet_channel:
        streams = [(f"edge-1/{n}", pb2_grpc.CoreOnboardingStub(busy_channel)) for n in range(20)]
        streams.append(("edge-2", pb2_grpc.CoreOnboardingStub(quiet_channel)))
        calls = []
        for label, stub in streams:
            call = stub.WatchPackages(pb2.WatchPackagesRequest(cursor=0), timeout=60)
            updates[label] = pump_updates(call)
            calls.append(call)
        wait_for(lambda: metric(core, "muster_package_streams") == 21, timeout=20, what="21 open streams")
        # Nothing pending: each stream's first update says it is live.
        for label in updates:
            assert updates[label].get(timeout=10).WhichOneof("change") is None
        reads, deliveries = metric(core, "muster_package_feed_reads_total"), metric(core, "muster_package_feed_deliveries_total")

        made = [core.create(f"q{n}", poller_id="edge-2").json()["id"] for n in range(10)]
        got = [updates["edge-2"].get(timeout=10) for _ in made]
        assert [u.pending.id for u in got] == made
        # A marker for edge-1 after them: the first thing each edge-1 stream gets, so none saw edge-2's packages.
        marker = core.create("marker", poller_id="edge-1").json()["id"]
        for n in range(20):
            assert updates[f"edge-1/{n}"].get(timeout=10).pending.id == marker
        assert updates["edge-2"].empty()
        assert metric(core, "muster_package_feed_deliveries_total") - deliveries == 10 + 20
        # 22 commits: 11 creations wake the feed at most once each (one more if a commit lands during a read); the
        # 11 Delivered transitions of their pulls, which no stream carries, do not wake it at all. Read per stream,
        # the creations alone would cost 21 reads each.
        read = metric(core, "muster_package_feed_reads_total") - reads
        assert 1 <= read <= 12, f"{read} reads of the events table for 11 creations (and 11 pulls) and 21 streams"
        for call in calls:
            call.cancel()
    wait_for(lambda: metric(core, "muster_package_streams") == 0, timeout=10, what="the cancelled streams to close")


def test_watch_refuses_certificates_that_are_not_a_root_issued_poller_svid(sqlite_core, tmp_path, onboarding):
    pb2, pb2_grpc = onboarding
    core = sqlite_core
    identity = attested_poller(core, tmp_path)
    ca_cert = x509.load_pem_x509_certificate((identity / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((identity / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(seconds=10)).not_valid_after(now + datetime.timedelta(hours=1))
              .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("spiffe://blackbox.test/muster/poller/edge-1")]), critical=True)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    chain = forged.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with channel_with(core, identity, key_pem=key_pem, chain_pem=chain) as channel:
        try:
            next(iter(pb2_grpc.CoreOnboardingStub(channel).WatchPackages(pb2.WatchPackagesRequest(), timeout=10)))
            raise AssertionError("a certificate from the poller's own CA passed as the poller")
        except grpc.RpcError as error:
            # Muster's path rule refuses it before any policy: a poller's CA signs only IDs strictly below the poller.
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "is not under" in error.details()
    # The refusal is audited off the call's path (the bridge's refusal observer), so it may land just after the answer.
    def refused():
        rows = core.api("GET", "/api/audit?action=grpc.refused").json()["items"]
        return any(r["target_id"] == "/muster.onboarding.v1.CoreOnboarding/WatchPackages" and r["outcome"] == "denied" for r in rows)
    wait_for(refused, timeout=10, what="the refused watch in the audit log")
    bundle = (identity / "bundle.pem").read_bytes()
    with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", grpc.ssl_channel_credentials(root_certificates=bundle)) as channel:
        try:
            next(iter(pb2_grpc.CoreOnboardingStub(channel).WatchPackages(pb2.WatchPackagesRequest(), timeout=10)))
            raise AssertionError("an anonymous caller watched packages")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_report_activations_is_idempotent_refuses_foreign_packages_and_is_the_heartbeat(sqlite_core, tmp_path, onboarding):
    import time
    pb2, pb2_grpc = onboarding
    core = sqlite_core
    identity = attested_poller(core, tmp_path)
    mine = core.create("a1").json()
    core.create("edge-2", "poller")
    foreign = core.create("b1", poller_id="edge-2").json()
    contact = lambda: core.api("GET", "/api/pollers").json()["items"][0]["last_contact_at"]
    before = contact()
    time.sleep(0.05)

    def activation(package, spiffe_id=None):
        return pb2.Activation(package_id=package["id"], spiffe_id=spiffe_id or package["spiffe_id"], source_address="10.1.2.3",
                              activated_at_unix_ms=int(time.time() * 1000), serial="0a:0b")

    with channel_with(core, identity) as channel:
        stub = pb2_grpc.CoreOnboardingStub(channel)
        assert list(stub.ReportActivations(pb2.ReportActivationsRequest(), timeout=10).accepted) == []
        # Contacts are written together, at most a second after the call.
        deadline = time.time() + 5
        while contact() <= before and time.time() < deadline:
            time.sleep(0.1)
        assert contact() > before, "an empty report did not refresh the poller's last contact"
        report = pb2.ReportActivationsRequest(activations=[
            activation(mine), activation(foreign), activation(mine, spiffe_id=foreign["spiffe_id"])])
        assert list(stub.ReportActivations(report, timeout=10).accepted) == [mine["id"]]
        # Sent again (the first answer lost): accepted again, recorded once.
        assert list(stub.ReportActivations(report, timeout=10).accepted) == [mine["id"]]
        with pytest.raises(grpc.RpcError) as too_many:
            stub.ReportActivations(pb2.ReportActivationsRequest(activations=[activation(mine)] * 501), timeout=10)
        assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    shown = core.api("GET", f"/api/edge-packages/{mine['id']}").json()
    assert shown["status"] == "activated" and shown["activated_from_ip"] == "10.1.2.3"
    assert core.api("GET", f"/api/edge-packages/{foreign['id']}").json()["status"] == "created"
    rows = core.api("GET", "/api/audit?action=package.activate&actor=poller:edge-1").json()["items"]
    rows = [r for r in rows if r["target_id"] in (mine["id"], foreign["id"])]  # not the poller's own attestation
    assert sorted((r["target_id"], r["outcome"], r["reason"]) for r in rows) == sorted([
        (mine["id"], "ok", None),
        (foreign["id"], "denied", "the package is not assigned to this poller"),
        (foreign["id"], "denied", "the package is not assigned to this poller"),
        (mine["id"], "denied", "the reported SPIFFE ID is not the package's"),
        (mine["id"], "denied", "the reported SPIFFE ID is not the package's"),
    ])
