"""A compromised poller stays contained; a hostile site network gets nothing. Each test forges what an attacker
would (certificates made with pyca/cryptography from a second poller's real CA key, fake servers in grpcio) and
checks Muster refuses it, changes nothing and says so in the audit log. See Docs/threat-model.md."""
import hashlib
import json
import shutil
import subprocess
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import PG_URL, Core, free_port, new_postgres_database, open_archive
from forge import FakeServer, key_pem, leaf, load_ca, load_root, new_root, pem
from relay import AGENT, POLLER, Poller, agent_package, install_poller_package, join, remember, wait_cached, wait_for

TD = "blackbox.test"


class Site:
    """Core, two attested pollers (edge-1, edge-2) and one agent a1 joined under edge-1."""

    def __init__(self, tmp, onboarding):
        self.core = Core(extra=["--create-rate-limit", "1000"])
        self.p1 = Poller(self.core, tmp / "p1", name="edge-1")
        self.p2 = Poller(self.core, tmp / "p2", name="edge-2")
        self.root = x509.load_pem_x509_certificate(self.p1.bundle)
        package, _, token = agent_package(self.core, "a1", poller="edge-1")
        wait_cached(self.core, package["id"])
        self.a1_key, reply = join(onboarding, self.p1, remember(token))
        self.a1_chain = [x509.load_der_x509_certificate(d) for d in reply.svid_chain]
        self.p1_ca = load_ca(self.p1.directory / "identity")
        self.p2_ca = load_ca(self.p2.directory / "identity")

    def stop(self):
        self.p1.stop()
        self.p2.stop()
        self.core.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, onboarding):
    instance = Site(tmp_path_factory.mktemp("trust"), onboarding)
    yield instance
    instance.stop()


def renew_at(onboarding, poller, key, chain):
    """Calls poller.Renew over mTLS presenting `chain` (PEM) with `key`; returns the grpc status code."""
    pb, grpc_mod = onboarding
    from relay import new_key_and_csr
    _, csr = new_key_and_csr()
    creds = grpc.ssl_channel_credentials(root_certificates=poller.bundle, private_key=key_pem(key), certificate_chain=chain)
    with grpc.secure_channel(poller.address, creds) as channel:
        try:
            grpc_mod.EdgeOnboardingStub(channel).Renew(pb.RenewRequest(csr=csr), timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


# Defect 1: the poller's Renew policy read the chain the client sent, not the path OpenSSL verified.
def test_renew_refuses_a_leaf_forged_with_another_pollers_ca_behind_the_real_ca(site, onboarding):
    a1 = site.a1_chain[0]
    p2_cert, p2_key = site.p2_ca
    p1_cert, _ = site.p1_ca
    # Same ID, same serial as a1's real SVID; signed by edge-2's CA; edge-1's CA sent along as a decoy.
    key, forged = leaf(f"spiffe://{TD}/muster/poller/edge-1/agent/a1", p2_cert, p2_key, serial=a1.serial_number)
    assert renew_at(onboarding, site.p1, key, pem(forged, p1_cert, p2_cert)) in (grpc.StatusCode.PERMISSION_DENIED,
                                                                                  grpc.StatusCode.UNAVAILABLE)
    # The genuine SVID still renews: nothing was changed by the attempt.
    assert renew_at(onboarding, site.p1, site.a1_key, pem(*site.a1_chain)) == grpc.StatusCode.OK
    # The refusal reaches Core's audit log through the poller's report.
    wait_for(lambda: any("certificate refused" in (r.get("reason") or "") for r in
                         site.core.api("GET", "/api/audit?actor=poller:edge-1").json()["items"]), what="the refusal audited at Core")


def fake_with(spiffe_id, ca, include_root=None, dns=(), ips=()):
    cert, key = ca
    server_key, server_leaf = leaf(spiffe_id, cert, key, dns=dns, ips=ips)
    chain = [server_leaf, cert] + ([include_root] if include_root is not None else [])
    return FakeServer(server_key, pem(*chain))


# Defect 2: clients did not apply the path rule to servers, and agents accepted any poller ID.
def test_agent_join_refuses_a_poller_id_minted_by_another_pollers_ca(site, tmp_path):
    package, _, token = agent_package(site.core, "a2", poller="edge-1")
    fake = fake_with(f"spiffe://{TD}/muster/poller/edge-1", site.p2_ca, include_root=site.root)
    try:
        token_file = tmp_path / "token"
        token_file.write_text(remember(token) + "\n")
        pin = package["join_command"].split("--ca-pin ")[1].strip("'")
        result = subprocess.run([AGENT, "join", "--poller", fake.address, "--poller-id", "edge-1", "--token-file", str(token_file),
                                 "--ca-pin", pin, "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert fake.methods() == [], "the agent sent its join to a forged poller"
        assert "edge-2" in result.stderr or "not under" in result.stderr or "scope" in result.stderr, result.stderr
    finally:
        fake.stop()


def test_agent_join_refuses_a_genuine_but_different_poller(site, tmp_path):
    package, archive, token = agent_package(site.core, "a3", poller="edge-1", archive_dir=tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(remember(token))
    pin = package["join_command"].split("--ca-pin ")[1].strip("'")
    result = subprocess.run([AGENT, "join", "--poller", site.p2.address, "--poller-id", "edge-1", "--token-file", str(token_file),
                             "--ca-pin", pin, "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "edge-2" in result.stderr, result.stderr
    # The package route too: an install pointed at edge-2 for edge-1's package stops before sending the token.
    result = subprocess.run([AGENT, "install", "--package", str(archive), "--poller", site.p2.address, "--dir", str(tmp_path / "agent2")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "edge-2" in result.stderr, result.stderr
    # The token was never spent: the right poller still takes it.
    wait_cached(site.core, package["id"])
    result = subprocess.run([AGENT, "join", "--poller", site.p1.address, "--poller-id", "edge-1", "--token-file", str(token_file),
                             "--ca-pin", pin, "--dir", str(tmp_path / "agent3")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_poller_refuses_a_core_minted_by_a_pollers_ca(site, tmp_path):
    """`muster-poller status` (bundle trust) and a fresh attestation (pin trust) both meet a fake Core whose SVID
    edge-2's CA signed: neither sends anything."""
    fake = fake_with(f"spiffe://{TD}/muster/core", site.p2_ca, include_root=site.root)
    try:
        copy = tmp_path / "p1-copy"
        shutil.copytree(site.p1.directory, copy, ignore=shutil.ignore_patterns("cache.db*"))
        manifest = json.loads((copy / "package" / "manifest.json").read_text())
        manifest["connect"] = fake.address
        (copy / "package" / "manifest.json").write_text(json.dumps(manifest))
        status = subprocess.run([POLLER, "status", "--dir", str(copy)], capture_output=True, text=True, timeout=60)
        assert "is not under spiffe://blackbox.test/muster/poller/edge-2" in status.stdout, status.stdout
        # A new poller package attesting to the fake Core through the pin: the token never leaves.
        state = tmp_path / "edge-3"
        package = install_poller_package(site.core, "edge-3", state)
        manifest = json.loads((state / "package" / "manifest.json").read_text())
        manifest["connect"] = fake.address
        (state / "package" / "manifest.json").write_text(json.dumps(manifest))
        run = subprocess.run([POLLER, "run", "--dir", str(state), "--listen", f"127.0.0.1:{free_port()}"], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode != 0
        assert fake.methods() == [], f"a poller talked to a forged Core: {fake.methods()}"
        assert site.core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "delivered"
    finally:
        fake.stop()


# Defect 3: a revoked poller's SVID worked again once its name was reused.
def test_revoked_pollers_svid_stays_dead_when_the_name_is_reused(tmp_path, onboarding):
    pb, grpc_mod = onboarding
    core = Core(extra=["--create-rate-limit", "1000"])
    try:
        old = Poller(core, tmp_path / "old", name="edge-9")
        old.stop()
        old_identity = tmp_path / "old-identity"
        shutil.copytree(old.directory / "identity", old_identity)
        assert core.api("POST", f"/api/edge-packages/{old.package_id}/revoke").status == 200
        new = Poller(core, tmp_path / "new", name="edge-9")
        try:
            creds = grpc.ssl_channel_credentials(root_certificates=(old_identity / "bundle.pem").read_bytes(),
                                                 private_key=(old_identity / "svid.key").read_bytes(),
                                                 certificate_chain=(old_identity / "svid.pem").read_bytes())
            with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", creds) as channel:
                stub = grpc_mod.CoreOnboardingStub(channel)
                from relay import new_key_and_csr
                _, csr = new_key_and_csr()
                with pytest.raises(grpc.RpcError) as renew:
                    stub.RenewPoller(pb.RenewPollerRequest(svid_csr=csr), timeout=10)
                assert renew.value.code() == grpc.StatusCode.PERMISSION_DENIED
                with pytest.raises(grpc.RpcError) as watch:
                    next(iter(stub.WatchPackages(pb.WatchPackagesRequest(cursor=0), timeout=10)))
                assert watch.value.code() == grpc.StatusCode.PERMISSION_DENIED
                with pytest.raises(grpc.RpcError) as report:
                    stub.ReportActivations(pb.ReportActivationsRequest(), timeout=10)
                assert report.value.code() == grpc.StatusCode.PERMISSION_DENIED
            audit = core.api("GET", "/api/audit?action=grpc.refused").json()["items"]
            assert any("revoked" in (row["reason"] or "") for row in audit), audit
            renewals = core.api("GET", "/api/audit?action=poller.renew").json()["items"]
            assert renewals == []
        finally:
            new.stop()
    finally:
        core.stop()


# Defect 4: poller CAs constrained only URIs; the advertised host went unchecked into root-signed SVIDs.
def test_a_pollers_ca_cannot_mint_host_names_for_standard_verifiers(site, tmp_path):
    p2_cert, p2_key = site.p2_ca
    _, dns_leaf = leaf(f"spiffe://{TD}/muster/poller/edge-2/agent/x", p2_cert, p2_key, dns=["localhost"])
    _, ip_leaf = leaf(f"spiffe://{TD}/muster/poller/edge-2/agent/y", p2_cert, p2_key, ips=["127.0.0.1"])
    _, plain_leaf = leaf(f"spiffe://{TD}/muster/poller/edge-2/agent/z", p2_cert, p2_key)
    (tmp_path / "root.pem").write_bytes(pem(site.root))
    (tmp_path / "ca.pem").write_bytes(pem(p2_cert))
    for name, cert, ok in [("dns", dns_leaf, False), ("ip", ip_leaf, False), ("plain", plain_leaf, True)]:
        (tmp_path / f"{name}.pem").write_bytes(pem(cert))
        result = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
                                 str(tmp_path / "ca.pem"), str(tmp_path / f"{name}.pem")], capture_output=True, text=True)
        assert (result.returncode == 0) == ok, (name, result.stdout, result.stderr)
        if not ok:
            assert "excluded subtree" in (result.stdout + result.stderr), result.stdout + result.stderr
    # A hostname-checking client (grpcio) meets a fake server with the DNS leaf: the handshake fails.
    key, served = leaf(f"spiffe://{TD}/muster/core", p2_cert, p2_key, dns=["localhost"])
    fake = FakeServer(key, pem(served, p2_cert))
    try:
        with grpc.secure_channel(f"localhost:{fake.port}", grpc.ssl_channel_credentials(root_certificates=pem(site.root))) as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc
            with pytest.raises(grpc.RpcError) as error:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert fake.methods() == []
    finally:
        fake.stop()


@pytest.mark.parametrize("advertise", ["*.example.org:50052", "$(touch /tmp/pwned):50052", "a b:1", "edge:0", "edge:99999",
                                       "[::1:50052", "-edge.lab:50052", "x" * 70 + ".lab:50052", "edge.lab.:50052",
                                       "127.0.0.1;id:50052", "\u00e9dge:50052"])
def test_attestation_refuses_a_bad_advertised_address(sqlite_core, onboarding, advertise):
    pb, grpc_mod = onboarding
    core = sqlite_core
    package = core.create("edge-bad", "poller").json()
    token = remember(open_archive(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)["join-token"][1].decode().strip())
    from test_attest_poller import csr
    creds = grpc.ssl_channel_credentials(root_certificates=core.api("GET", "/api/trust-bundle").body)
    with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", creds) as channel:
        with pytest.raises(grpc.RpcError) as error:
            grpc_mod.CoreOnboardingStub(channel).AttestPoller(pb.AttestPollerRequest(
                join_token=token, svid_csr=csr(), ca_csr=csr(ca=True), advertise_address=advertise), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "advertise_address" in error.value.details()
    assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "delivered"


def test_attestation_refuses_cores_own_host(tmp_path, onboarding):
    pb, grpc_mod = onboarding
    core = Core(extra=["--advertise", "core.example.org:50051"])
    try:
        package = core.create("edge-c", "poller").json()
        token = remember(open_archive(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)["join-token"][1].decode().strip())
        from test_attest_poller import csr
        creds = grpc.ssl_channel_credentials(root_certificates=core.api("GET", "/api/trust-bundle").body)
        with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", creds, options=(("grpc.ssl_target_name_override", "localhost"),)) as channel:
            with pytest.raises(grpc.RpcError) as error:
                grpc_mod.CoreOnboardingStub(channel).AttestPoller(pb.AttestPollerRequest(
                    join_token=token, svid_csr=csr(), ca_csr=csr(ca=True), advertise_address="CORE.example.org:50052"), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "Core's own address" in error.value.details()
    finally:
        core.stop()


# Defect 5: the advertised address went raw into the join command and the README.
def test_join_command_is_quoted_and_uses_the_token_file(site):
    package = site.core.create("a5", poller_id="edge-1").json()
    command = package["join_command"]
    assert command.startswith(f"muster-agent join --poller '{site.p1.address}' --poller-id 'edge-1' --token-file join-token --ca-pin 'sha256:")
    assert "$(" not in command and "--token " not in command
    files = open_archive(site.core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    assert command in files["README.txt"][1].decode()
    # What an installer pastes runs as written under a real shell (the token file is read, the address is literal).
    assert subprocess.run(["sh", "-n", "-c", command], capture_output=True).returncode == 0


def test_poller_with_a_shell_injection_address_is_refused(sqlite_core, tmp_path):
    core = sqlite_core
    state = tmp_path / "state"
    install_poller_package(core, "edge-x", state)
    marker = tmp_path / "pwned"
    run = subprocess.run([POLLER, "run", "--dir", str(state), "--listen", f"127.0.0.1:{free_port()}",
                          "--advertise", f"$(touch {marker}):50052"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "advertise_address" in run.stderr + run.stdout
    agent = core.create("a-x", poller_id="edge-x").json()
    assert "$(" not in (agent["join_command"] or "") and not marker.exists()


# Defect 6: a renewal answer's bundle replaced the poller's trust anchors.
def test_renewal_answer_cannot_replace_the_pollers_trust_anchors(tmp_path, onboarding):
    pb, _ = onboarding
    core = Core(extra=["--svid-ttl", "30", "--create-rate-limit", "1000"])
    fake = None
    try:
        poller = Poller(core, tmp_path / "p", name="edge-r")
        poller.stop()
        identity = poller.directory / "identity"
        root_cert, root_key = load_root(core)
        attacker_root, _ = new_root(TD)
        spiffe = f"spiffe://{TD}/muster/poller/edge-r"

        def renew(request_bytes):
            request = pb.RenewPollerRequest.FromString(request_bytes)
            csr = x509.load_der_x509_csr(request.svid_csr)
            _, svid = leaf(spiffe, root_cert, root_key, key=None)
            # Re-sign over the poller's own key, so only the bundle is hostile.
            from cryptography.hazmat.primitives import hashes
            builder = x509.CertificateBuilder().subject_name(svid.subject).issuer_name(root_cert.subject) \
                .public_key(csr.public_key()).serial_number(x509.random_serial_number()) \
                .not_valid_before(svid.not_valid_before_utc).not_valid_after(svid.not_valid_after_utc)
            for extension in svid.extensions:
                builder = builder.add_extension(extension.value, extension.critical)
            genuine = builder.sign(root_key, hashes.SHA256())
            from cryptography.hazmat.primitives import serialization
            der = lambda c: c.public_bytes(serialization.Encoding.DER)
            return pb.RenewPollerResponse(svid_chain=[der(genuine)], bundle=[der(root_cert), der(attacker_root)]).SerializeToString()

        core_key, core_leaf = leaf(f"spiffe://{TD}/muster/core", root_cert, root_key, dns=["localhost"], ips=["127.0.0.1"])
        fake = FakeServer(core_key, pem(core_leaf), answers={"/muster.onboarding.v1.CoreOnboarding/RenewPoller": renew})
        manifest = json.loads((poller.directory / "package" / "manifest.json").read_text())
        manifest["connect"] = fake.address
        (poller.directory / "package" / "manifest.json").write_text(json.dumps(manifest))
        before = (identity / "svid.pem").read_bytes()
        poller.start()
        wait_for(lambda: "RenewPoller" in " ".join(fake.methods()), timeout=40, what="the poller's renewal at half-life")
        time.sleep(2)
        bundle = x509.load_pem_x509_certificates((identity / "bundle.pem").read_bytes())
        assert [c.fingerprint(c.signature_hash_algorithm) for c in bundle] == \
            [root_cert.fingerprint(root_cert.signature_hash_algorithm)], "the answer's bundle was taken on its word"
        assert (identity / "svid.pem").read_bytes() != before, "the genuine SVID in the answer should still be taken"
        poller.stop()
    finally:
        if fake:
            fake.stop()
        core.stop()


# Smaller items of the same review.
@pytest.mark.parametrize("field,value", [("site", "lab\x1b[2J"), ("notes", "a\x00b"), ("site", "a\rb"), ("selectors", ["unix:uid:1\x1b"]),
                                         ("metadata", {"k": "v\x07"})])
def test_control_characters_are_refused_by_field(sqlite_core, field, value):
    core = sqlite_core
    before = core.api("GET", "/api/edge-packages").json()["items"]
    answer = core.create("edge-cc", "poller", **{field: value})
    assert answer.status == 400, answer.body
    body = answer.json()
    assert body["error"] == "bad_request" and "control character U+" in body["message"] and body["message"].startswith(field)
    assert core.api("GET", "/api/edge-packages").json()["items"] == before


def test_revoke_reason_with_a_control_character_changes_nothing(sqlite_core):
    core = sqlite_core
    package = core.create("edge-r", "poller").json()
    answer = core.api("POST", f"/api/edge-packages/{package['id']}/revoke", {"reason": "gone\x1b]0;owned\x07"})
    assert answer.status == 400 and "reason" in answer.json()["message"]
    assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "created"


def test_streams_per_peer_are_capped(sqlite_core):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    core = sqlite_core
    bundle = core.api("GET", "/api/trust-bundle").body
    with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", grpc.ssl_channel_credentials(root_certificates=bundle)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        streams = [stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30) for _ in range(32)]
        for stream in streams:
            next(stream)  # each is open and has answered
        extra = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            next(extra)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        streams[0].cancel()
        time.sleep(0.5)
        again = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        next(again)  # a closed stream frees its place
        again.cancel()
        for stream in streams[1:]:
            stream.cancel()


@pytest.mark.skipif(not PG_URL, reason="needs the test PostgreSQL server")
def test_readyz_does_not_name_the_database():
    """With its database gone, /readyz answers 503 without saying where the database is (the log does)."""
    database = new_postgres_database()
    core = Core(database=database)
    try:
        assert core.request("GET", "/readyz").status == 200
        name = database.rsplit("/", 1)[1]
        port = PG_URL.rsplit(":", 1)[1].split("/")[0]
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-q", "-c", f"DROP DATABASE {name} WITH (FORCE)"],
                       check=True, capture_output=True)
        answer = wait_for(lambda: (lambda r: r if r.status == 503 else None)(core.request("GET", "/readyz")), what="readyz 503")
        body = answer.json()
        assert body["error"] == "unavailable" and body["message"] == "the database does not answer", body
        assert name not in answer.body.decode() and "127.0.0.1" not in answer.body.decode()
    finally:
        core.stop()
    assert name in core.log_path.read_text(), "the log still says which database failed"


def test_cli_download_is_0600_from_the_start_and_shows_no_control_characters(sqlite_core, tmp_path):
    import os
    import stat
    from conftest import BIN_DIR
    core = sqlite_core
    package = core.create("edge-d", "poller").json()
    env = {**os.environ, "MUSTER_CORE_URL": core.url, "MUSTER_TOKEN": core.admin}
    os.umask(0o022)
    target = tmp_path / "pkg.tar.gz"
    out = subprocess.run([str(BIN_DIR / "muster"), "package", "download", package["id"], "-o", str(target)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    open_archive(target.read_bytes())
    # A path that cannot be written fails before the one-time download spends anything.
    second = core.create("edge-e", "poller").json()
    blocked = subprocess.run([str(BIN_DIR / "muster"), "package", "download", second["id"], "-o", str(tmp_path / "no" / "x.tar.gz")],
                             env=env, capture_output=True, text=True, timeout=30)
    assert blocked.returncode == 1 and "nothing was downloaded" in blocked.stderr
    assert core.api("GET", f"/api/edge-packages/{second['id']}").json()["status"] == "created"


# The matrix: {Core, poller, agent} × {another poller's CA, right ID but wrong issuer, revoked serial, expired,
# foreign trust domain, root-signed where a poller's CA should sign and the reverse}.
REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)


@pytest.fixture(scope="module")
def revoked(site, onboarding):
    """An agent of edge-1 joined, then revoked: its SVID is genuine, its serial revoked."""
    package, _, token = agent_package(site.core, "a-revoked", poller="edge-1")
    wait_cached(site.core, package["id"])
    key, reply = join(onboarding, site.p1, remember(token))
    assert site.core.api("POST", f"/api/edge-packages/{package['id']}/revoke").status == 200
    chain = [x509.load_der_x509_certificate(d) for d in reply.svid_chain]
    wait_for(lambda: renew_at(onboarding, site.p1, key, pem(*chain)) == grpc.StatusCode.PERMISSION_DENIED, what="the revocation at edge-1")
    return key, chain


def core_call(site, onboarding, key, chain):
    """An empty ReportActivations (the heartbeat) at Core over mTLS with `chain`; returns the status code."""
    pb, grpc_mod = onboarding
    creds = grpc.ssl_channel_credentials(root_certificates=site.p1.bundle, private_key=key_pem(key), certificate_chain=chain)
    with grpc.secure_channel(f"127.0.0.1:{site.core.grpc_port}", creds) as channel:
        try:
            grpc_mod.CoreOnboardingStub(channel).ReportActivations(pb.ReportActivationsRequest(), timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def core_cases(site):
    root = load_root(site.core)
    p1_id, agent_id = f"spiffe://{TD}/muster/poller/edge-1", f"spiffe://{TD}/muster/poller/edge-1/agent/a1"
    evil = new_root(TD)
    return {
        "another poller's CA": (leaf(p1_id, *site.p2_ca), [site.p2_ca[0]]),
        "right ID, wrong issuer (its own CA)": (leaf(p1_id, *site.p1_ca), [site.p1_ca[0]]),
        "expired": (leaf(p1_id, *root, expired=True), []),
        "foreign trust domain": (leaf("spiffe://evil.test/muster/poller/edge-1", *new_root("evil.test")), []),
        "unknown root, same trust domain": (leaf(p1_id, *evil), []),
        "root-signed agent ID where a poller is expected": (leaf(agent_id, *root), []),
    }


@pytest.mark.parametrize("case", ["another poller's CA", "right ID, wrong issuer (its own CA)", "expired", "foreign trust domain",
                                  "unknown root, same trust domain", "root-signed agent ID where a poller is expected"])
def test_matrix_core(site, onboarding, case):
    (key, cert), extra = core_cases(site)[case]
    assert core_call(site, onboarding, key, pem(cert, *extra)) in REFUSED
    # The genuine poller SVID still works: nothing changed.
    identity = site.p1.directory / "identity"
    genuine_key = serialization.load_pem_private_key((identity / "svid.key").read_bytes(), None)
    assert core_call(site, onboarding, genuine_key, (identity / "svid.pem").read_bytes()) == grpc.StatusCode.OK


def test_matrix_core_revoked_serial(site, onboarding, tmp_path):
    """A poller revoked at Core: its genuine, unexpired, root-signed SVID is refused by serial."""
    gone = Poller(site.core, tmp_path / "gone", name="edge-gone")
    gone.stop()
    identity = gone.directory / "identity"
    key = serialization.load_pem_private_key((identity / "svid.key").read_bytes(), None)
    # Twice: the second heartbeat is admitted on the verdict Core keeps; the revocation must end that at once.
    for _ in range(2):
        assert core_call(site, onboarding, key, (identity / "svid.pem").read_bytes()) == grpc.StatusCode.OK
    assert site.core.api("POST", f"/api/edge-packages/{gone.package_id}/revoke").status == 200
    assert core_call(site, onboarding, key, (identity / "svid.pem").read_bytes()) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("case", ["another poller's CA", "root-signed where the poller's CA should sign", "revoked serial", "expired",
                                  "foreign trust domain", "the poller's own root-signed SVID"])
def test_matrix_poller(site, onboarding, revoked, case):
    a1 = site.a1_chain[0]
    agent_id = f"spiffe://{TD}/muster/poller/edge-1/agent/a1"
    root = load_root(site.core)
    if case == "another poller's CA":
        key, cert = leaf(agent_id, *site.p2_ca, serial=a1.serial_number)
        chain = pem(cert, site.p2_ca[0])
    elif case == "root-signed where the poller's CA should sign":
        key, cert = leaf(agent_id, *root, serial=a1.serial_number)
        chain = pem(cert)
    elif case == "revoked serial":
        key, certs = revoked
        chain = pem(*certs)
    elif case == "expired":
        key, cert = leaf(agent_id, *site.p1_ca, serial=a1.serial_number, expired=True)
        chain = pem(cert, site.p1_ca[0])
    elif case == "foreign trust domain":
        key, cert = leaf("spiffe://evil.test/muster/poller/edge-1/agent/a1", *new_root("evil.test"))
        chain = pem(cert)
    else:
        identity = site.p1.directory / "identity"
        key = serialization.load_pem_private_key((identity / "svid.key").read_bytes(), None)
        chain = (identity / "svid.pem").read_bytes()
    assert renew_at(onboarding, site.p1, key, chain) in REFUSED
    assert renew_at(onboarding, site.p1, site.a1_key, pem(*site.a1_chain)) == grpc.StatusCode.OK


def agent_joins(site, tmp_path, fake, pin=None):
    """muster-agent join against `fake` for poller edge-1; returns the process result."""
    token_file = tmp_path / "token"
    token_file.write_text("mjt_" + "a" * 38)
    spki = site.root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = pin or "sha256:" + hashlib.sha256(spki).hexdigest()
    return subprocess.run([AGENT, "join", "--poller", fake.address, "--poller-id", "edge-1", "--token-file", str(token_file),
                           "--ca-pin", pin, "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", ["another poller's CA", "right ID, wrong issuer (its own CA)", "expired", "foreign trust domain",
                                  "an agent SVID from the root where the poller's CA should sign"])
def test_matrix_agent(site, onboarding, tmp_path, case):
    pb, _ = onboarding
    root = load_root(site.core)
    p1_id = f"spiffe://{TD}/muster/poller/edge-1"
    answers = {}
    if case == "another poller's CA":
        key, cert = leaf(p1_id, *site.p2_ca)
        chain = [cert, site.p2_ca[0], site.root]
    elif case == "right ID, wrong issuer (its own CA)":
        key, cert = leaf(p1_id, *site.p1_ca)
        chain = [cert, site.p1_ca[0], site.root]
    elif case == "expired":
        key, cert = leaf(p1_id, *root, expired=True, ips=["127.0.0.1"])
        chain = [cert, site.root]
    elif case == "foreign trust domain":
        evil = new_root("evil.test")
        key, cert = leaf("spiffe://evil.test/muster/poller/edge-1", *evil)
        chain = [cert, evil[0]]
    else:
        # A genuine root-signed poller SVID (made with Core's root key), answering the join with a root-signed agent
        # SVID: the agent must refuse what it gets, since agents are issued by their poller's CA.
        key, cert = leaf(p1_id, *root, ips=["127.0.0.1"])
        chain = [cert, site.root]

        def answer(request_bytes):
            request = pb.JoinRequest.FromString(request_bytes)
            csr = x509.load_der_x509_csr(request.csr)
            _, template = leaf(f"{p1_id}/agent/a9", *root)
            builder = x509.CertificateBuilder().subject_name(template.subject).issuer_name(root[0].subject).public_key(csr.public_key()) \
                .serial_number(x509.random_serial_number()).not_valid_before(template.not_valid_before_utc) \
                .not_valid_after(template.not_valid_after_utc)
            for extension in template.extensions:
                builder = builder.add_extension(extension.value, extension.critical)
            from cryptography.hazmat.primitives import hashes
            svid = builder.sign(root[1], hashes.SHA256())
            der = lambda c: c.public_bytes(serialization.Encoding.DER)
            return pb.JoinResponse(spiffe_id=f"{p1_id}/agent/a9", svid_chain=[der(svid)], bundle=[der(root[0])]).SerializeToString()

        answers = {"/muster.onboarding.v1.EdgeOnboarding/Join": answer}
    fake = FakeServer(key, pem(*chain), answers=answers)
    try:
        result = agent_joins(site, tmp_path, fake)
        assert result.returncode == 1, result.stderr
        assert not (tmp_path / "agent" / "identity").exists()
        if answers:
            assert fake.methods() == ["/muster.onboarding.v1.EdgeOnboarding/Join"]
            assert "not an agent or checker ID under its CA" in result.stderr, result.stderr
        else:
            assert fake.methods() == [], "the agent sent its token to a server it should not trust"
    finally:
        fake.stop()
