"""The relay end to end: Core → poller (package stream, cache) → agent (Join from the poller's CA) → Core
(activation report). Real processes; outside judges: openssl, py-spiffe, grpcio."""
import json
import os
import stat
import subprocess
import time

import grpc
import pytest
from spiffe import TrustDomain, X509Bundle, X509Svid

from conftest import BIN_DIR
from relay import AGENT, Poller, agent_package, edge_stub, join, pem_chain, renew, status_of, wait_cached, wait_for


@pytest.fixture
def poller(sqlite_core, tmp_path):
    instance = Poller(sqlite_core, tmp_path / "poller")
    yield instance
    assert instance.stop() == 0, instance.logs()[-2000:]


def test_agent_gets_an_svid_from_its_poller_and_core_records_the_activation(sqlite_core, poller, tmp_path):
    core = sqlite_core
    package, archive, _ = agent_package(core, "web-1", archive_dir=tmp_path)
    assert package["join_command"].startswith(f"muster-agent join --poller '{poller.address}' --poller-id 'edge-1' --token-file join-token ")
    manifest_connect = json.loads(subprocess.run(["tar", "-xzOf", str(archive), "manifest.json"], capture_output=True, check=True).stdout)["connect"]
    assert manifest_connect == poller.address, "an agent package must name its poller, never Core"
    wait_cached(core, package["id"])

    state = tmp_path / "agent"
    result = subprocess.run([AGENT, "install", "--package", str(archive), "--dir", str(state)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spiffe_id = "spiffe://blackbox.test/muster/poller/edge-1/agent/web-1"
    assert spiffe_id in result.stdout
    identity = state / "identity"
    assert stat.S_IMODE(os.stat(identity).st_mode) == 0o700
    for name in ["svid.pem", "svid.key", "bundle.pem", "agent.json"]:
        assert stat.S_IMODE(os.stat(identity / name).st_mode) == 0o600, name
    assert not (state / "package" / "join-token").exists(), "the spent token file was kept"

    # openssl: the leaf verifies to the root through the poller's CA, strictly.
    verdict = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(identity / "bundle.pem"),
                              "-untrusted", str(identity / "svid.pem"), str(identity / "svid.pem")], capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(identity / "svid.pem"), "-noout", "-text"], capture_output=True, text=True).stdout
    assert f"URI:{spiffe_id}" in text and "CA:FALSE" in text and "Muster poller CA edge-1" in text

    # py-spiffe parses the SVID and its bundle; each certificate is signed by the next, the last by the root.
    svid = X509Svid.parse((identity / "svid.pem").read_bytes(), (identity / "svid.key").read_bytes())
    assert str(svid.spiffe_id) == spiffe_id
    roots = list(X509Bundle.parse(TrustDomain("blackbox.test"), (identity / "bundle.pem").read_bytes()).x509_authorities)
    chain = svid.cert_chain
    assert len(chain) == 2
    for child, parent in zip(chain, chain[1:] + [roots[0]]):
        child.verify_directly_issued_by(parent)

    # Core hears of it through the poller's outbox: Activated, with the address the poller saw.
    wait_for(lambda: status_of(core, package["id"]) == "activated", what="activation reported to Core")
    shown = core.api("GET", f"/api/edge-packages/{package['id']}").json()
    assert shown["activated_from_ip"] == "127.0.0.1" and shown["delivered_at"] is not None
    rows = core.api("GET", f"/api/audit?target_id={package['id']}").json()["items"]
    actions = sorted((r["action"], r["actor"], r["outcome"]) for r in rows)
    assert ("package.activate", "poller:edge-1", "ok") in actions
    # Delivered is whichever came first (DESIGN.md): the poller's pull (audited package.pull) or the download the
    # test made right after creating the package (then the pull moves nothing and writes no row).
    pulled = ("package.pull", "poller:edge-1", "ok") in actions
    assert shown["delivered_via"] == ("poller" if pulled else "download"), (shown["delivered_via"], actions)
    assert [r for r in rows if r["action"] == "package.activate"][0]["details"]["via"] == "poller"

    pollers = core.api("GET", "/api/pollers").json()["items"]
    assert pollers[0]["name"] == "edge-1" and pollers[0]["last_contact_at"] is not None
    # Core said the package stream caught up: from then on the open stream is the poller's contact (no heartbeat).
    assert "package stream live" in poller.logs()

    status = subprocess.run([AGENT, "status", "--dir", str(state)], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and spiffe_id in status.stdout and "reachable over TLS" in status.stdout
    held = poller.status()
    assert held.returncode == 0 and "packages:  0 pending, 1 redeemed, 0 revoked" in held.stdout, held.stdout


def test_join_command_checker_and_token_reuse(sqlite_core, poller, tmp_path, onboarding):
    core = sqlite_core
    package, _, token = agent_package(core, "probe-1", component_type="checker")
    wait_cached(core, package["id"])
    # The join command as Core renders it, pasted into a shell beside the extracted join-token file.
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    (extracted / "join-token").write_text(token + "\n")
    shell_env = {**os.environ, "PATH": f"{BIN_DIR}:{os.environ['PATH']}"}

    def paste(*extra):
        return subprocess.run(["sh", "-c", package["join_command"] + " " + " ".join(extra)], cwd=extracted, env=shell_env,
                              capture_output=True, text=True, timeout=60)

    first = paste("--type", "checker", "--dir", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "spiffe://blackbox.test/muster/poller/edge-1/checker/probe-1" in first.stdout

    again = paste("--dir", str(tmp_path / "b"))
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "join token not accepted" in again.stderr and not (tmp_path / "b" / "identity").exists()
    assert "token already used" in poller.logs() and token not in poller.logs()

    # Unknown and malformed tokens get the very same answer on the wire.
    answers = set()
    for bad in [token[:-2] + "zz", "mjt_short", ""]:
        with pytest.raises(grpc.RpcError) as refused:
            join(onboarding, poller, bad)
        answers.add((refused.value.code(), refused.value.details()))
    assert answers == {(grpc.StatusCode.UNAUTHENTICATED, "join token not accepted (unknown, already used, expired or revoked)")}

    # Core's audit log keeps the real reasons, reported by the poller with the agent's address.
    def denied():
        rows = core.api("GET", "/api/audit?action=package.activate&outcome=denied&actor=poller:edge-1").json()["items"]
        return rows if len(rows) >= 4 else None
    rows = wait_for(denied, what="refused joins audited at Core")
    assert sorted((r["target_id"] == package["id"], r["reason"]) for r in rows) == [
        (False, "malformed token"), (False, "malformed token"), (False, "malformed token"), (True, "token already used")], rows
    assert all(r["source_ip"] == "127.0.0.1" for r in rows)


def test_bad_csr_is_refused_without_spending_the_token(sqlite_core, poller, onboarding):
    core = sqlite_core
    pb, _ = onboarding
    package, _, token = agent_package(core, "web-2")
    wait_cached(core, package["id"])
    channel, stub = edge_stub(onboarding, poller)
    with channel:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Join(pb.JoinRequest(join_token=token, csr=b"\x30\x03\x02\x01\x00"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "CSR" in refused.value.details()
    key, response = join(onboarding, poller, token)
    assert response.spiffe_id.endswith("/agent/web-2")


def test_renewal_over_mtls_and_who_may_renew(sqlite_core, poller, onboarding):
    core = sqlite_core
    package, _, token = agent_package(core, "web-3")
    wait_cached(core, package["id"])
    key, joined = join(onboarding, poller, token)
    new_key, renewed = renew(onboarding, poller, key, pem_chain(joined.svid_chain))
    from cryptography import x509
    leaf = x509.load_der_x509_certificate(renewed.svid_chain[0])
    assert leaf.public_key().public_numbers() == new_key.public_key().public_numbers()
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier) == [joined.spiffe_id]

    # The poller's own SVID is not an agent's: no renewal with it.
    identity = poller.directory / "identity"
    from cryptography.hazmat.primitives import serialization
    poller_key = serialization.load_pem_private_key((identity / "svid.key").read_bytes(), None)
    with pytest.raises(grpc.RpcError) as denied:
        renew(onboarding, poller, poller_key, (identity / "svid.pem").read_bytes())
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Without a client certificate Renew is refused; GetBundle is open.
    pb, _ = onboarding
    channel, stub = edge_stub(onboarding, poller)
    with channel:
        with pytest.raises(grpc.RpcError) as missing:
            stub.Renew(pb.RenewRequest(csr=b""), timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        bundle = stub.GetBundle(pb.GetBundleRequest(), timeout=10)
        assert bundle.trust_domain == "blackbox.test" and len(bundle.bundle) == 1


def test_install_waits_for_a_package_its_poller_has_not_pulled_yet(sqlite_core, poller, tmp_path):
    core = sqlite_core
    assert poller.stop() == 0
    package, archive, _ = agent_package(core, "early", archive_dir=tmp_path)
    installer = subprocess.Popen([AGENT, "install", "--package", str(archive), "--dir", str(tmp_path / "agent")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    assert installer.poll() is None, installer.communicate()
    poller.start()
    out, err = installer.communicate(timeout=60)
    assert installer.returncode == 0, err
    assert "agent/early" in out
    wait_for(lambda: status_of(core, package["id"]) == "activated", what="activation at Core")


def test_agent_refuses_a_poller_the_pin_does_not_vouch_for(sqlite_core, poller, tmp_path, onboarding):
    core = sqlite_core
    package, _, token = agent_package(core, "pinned")
    wait_cached(core, package["id"])
    wrong = subprocess.run([AGENT, "join", "--poller", poller.address, "--poller-id", "edge-1", "--token", token, "--ca-pin", "sha256:" + "00" * 32,
                            "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and token not in wrong.stderr
    assert not (tmp_path / "agent" / "identity").exists()
    assert "join refused" not in poller.logs(), "the token reached a poller the pin did not vouch for"
    bad = subprocess.run([AGENT, "join", "--poller", "no-port", "--poller-id", "edge-1", "--token", token, "--ca-pin", "sha256:" + "00" * 32,
                          "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--poller must be host:port" in bad.stderr
    usage = subprocess.run([AGENT, "join", "--poller", poller.address, "--poller-id", "edge-1", "--token", token, "--ca-pin", "x", "--type", "robot",
                            "--dir", str(tmp_path / "agent")], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    # None of that spent the token.
    _, response = join(onboarding, poller, token)
    assert response.spiffe_id.endswith("/agent/pinned")
