"""CoreOnboarding.AttestPoller from grpcio: one token, 200 parallel redemptions over two Core processes on
one PostgreSQL, exactly one winner; the winner's SVID and CA checked by openssl."""
import pathlib
import subprocess
import tempfile
import threading

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import PG_URL, new_postgres_database, open_archive, replica_pair


def csr(ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def stub_for(core, pb2_grpc):
    bundle = (core.data_dir / "ca" / "bundle.pem").read_bytes()
    channel = grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", grpc.ssl_channel_credentials(root_certificates=bundle))
    return channel, pb2_grpc.CoreOnboardingStub(channel)


def poller_token(core):
    package = core.create("edge-1", "poller", site="lab").json()
    files = open_archive(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    return package, files["join-token"][1].decode().strip()


def test_attest_poller_bad_input_and_reuse(sqlite_core, onboarding):
    pb2, pb2_grpc = onboarding
    core = sqlite_core
    package, token = poller_token(core)
    channel, stub = stub_for(core, pb2_grpc)
    with channel:
        with pytest.raises(grpc.RpcError) as bad_csr:
            stub.AttestPoller(pb2.AttestPollerRequest(join_token=token, svid_csr=b"garbage", ca_csr=csr(ca=True)), timeout=10)
        assert bad_csr.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "CSR" in bad_csr.value.details()
        with pytest.raises(grpc.RpcError) as leaf_as_ca:
            stub.AttestPoller(pb2.AttestPollerRequest(join_token=token, svid_csr=csr(ca=True), ca_csr=csr(ca=True)), timeout=10)
        assert leaf_as_ca.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "delivered", "a refused request spent the token"

        reply = stub.AttestPoller(pb2.AttestPollerRequest(join_token=token, svid_csr=csr(), ca_csr=csr(ca=True),
                                                          advertise_address="10.9.8.7:50052"), timeout=10)
        assert reply.spiffe_id == "spiffe://blackbox.test/muster/poller/edge-1"
        messages = set()
        for attempt in [token, token[:-1] + ("A" if token[-1] != "A" else "B"), "mjt_unknown", ""]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.AttestPoller(pb2.AttestPollerRequest(join_token=attempt, svid_csr=csr(), ca_csr=csr(ca=True)), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            messages.add(refused.value.details())
        assert len(messages) == 1, "refusals must not tell unknown from used tokens"
    shown = core.api("GET", f"/api/edge-packages/{package['id']}").json()
    assert shown["status"] == "activated" and shown["activated_from_ip"] == "127.0.0.1"
    assert shown["activated_spiffe_id"] == reply.spiffe_id
    poller = core.api("GET", "/api/pollers").json()["items"][0]
    assert poller["status"] == "active" and poller["advertise_address"] == "10.9.8.7:50052"
    denied = core.api("GET", "/api/audit?action=package.activate&outcome=denied").json()["items"]
    assert {d["reason"] for d in denied} == {"token already used", "malformed token"}
    assert all(token not in str(d) for d in denied)

    work = pathlib.Path(tempfile.mkdtemp(prefix="muster-attest-"))
    (work / "bundle.pem").write_bytes(b"".join(x509.load_der_x509_certificate(c).public_bytes(serialization.Encoding.PEM) for c in reply.bundle))
    svid = x509.load_der_x509_certificate(reply.svid_chain[0])
    ca = x509.load_der_x509_certificate(reply.ca_chain[0])
    (work / "svid.pem").write_bytes(svid.public_bytes(serialization.Encoding.PEM))
    (work / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ["svid.pem", "ca.pem"]:
        verdict = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(work / "bundle.pem"), str(work / name)],
                                 capture_output=True, text=True)
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    san = svid.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [reply.spiffe_id]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.9.8.7"]
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


@pytest.mark.skipif(not PG_URL, reason="needs the test PostgreSQL server")
def test_200_parallel_redemptions_over_two_core_processes_one_wins(onboarding):
    pb2, pb2_grpc = onboarding
    database = new_postgres_database()
    # Every refusal audited one by one here (the flood budget is tested in test_flood.py).
    a, b = replica_pair(database, extra=["--refusal-audit-rate", "100000"])
    try:
        package, token = poller_token(a)
        channels = [stub_for(core, pb2_grpc) for core in (a, b)]
        requests = [pb2.AttestPollerRequest(join_token=token, svid_csr=csr(), ca_csr=csr(ca=True)) for _ in range(200)]
        outcomes = []
        barrier = threading.Barrier(40)

        def attempt(index):
            stub = channels[index % 2][1]
            for request in requests[index::40]:
                if request is requests[index]:
                    barrier.wait()
                try:
                    stub.AttestPoller(request, timeout=60)
                    outcomes.append("ok")
                except grpc.RpcError as error:
                    outcomes.append((error.code(), error.details()))

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outcomes) == 200
        assert outcomes.count("ok") == 1
        refusals = {o for o in outcomes if o != "ok"}
        assert refusals == {(grpc.StatusCode.UNAUTHENTICATED, "join token not accepted (unknown, already used, expired or revoked)")}
        audit = a.api("GET", "/api/audit?action=package.activate&limit=1000").json()["items"]
        assert sum(1 for row in audit if row["outcome"] == "ok") == 1
        assert sum(1 for row in audit if row["outcome"] == "denied") == 199
        assert a.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "activated"
        for channel, _ in channels:
            channel.close()
    finally:
        a.stop()
        b.stop()
