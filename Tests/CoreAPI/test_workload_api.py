"""The SPIFFE Workload API on muster-agent run, checked with clients written by others: py-spiffe (fetches,
X509Source following a rotation, a stream ended by revocation), raw grpcio (the security header, unknown and JWT
methods, a malformed request), py-spiffe again as `nobody` (selectors), openssl (the chain it hands out)."""
import datetime
import json
import os
import pathlib
import shutil
import socket as sockets
import stat
import subprocess
import tempfile
import threading
import time
import uuid

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyasn1.codec.der import decoder as der_decoder
from spiffe import WorkloadApiClient, X509Source
from spiffe._proto import workload_pb2

from conftest import LOG_DIR, Core
from relay import AGENT, Poller, agent_package, wait_cached, wait_for

# py-spiffe for a caller under another uid: Debian's python3 with the copy the bootstrap put where nobody can read.
OTHER_USER_PYTHON = "/var/lib/muster-test/python"
NOBODY = 65534


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    core = Core(extra=["--create-rate-limit", "1000"])
    # Short agent SVIDs (the shortest a poller issues: renewed at half-life, 30 s) so a rotation happens inside a test.
    poller = Poller(core, tmp_path_factory.mktemp("wl-poller") / "poller", extra=["--agent-svid-ttl", "60"])
    yield core, poller
    poller.stop()
    core.stop()


class WorkloadAgent:
    """An installed agent running with its Workload API on a socket nobody can reach too."""

    def __init__(self, core, poller, name, selectors=None):
        self.core = core
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="muster-wl-"))
        os.chmod(self.root, 0o755)  # so `nobody` can reach the socket; the agent makes run/ itself
        self.socket = self.root / "run" / "workload.sock"
        self.state = self.root / "agent"
        fields = {"selectors": selectors} if selectors is not None else {}
        self.package, archive, _ = agent_package(core, name, poller=poller.name, archive_dir=self.root, **fields)
        wait_cached(core, self.package["id"])
        installed = subprocess.run([AGENT, "install", "--package", str(archive), "--dir", str(self.state)],
                                   capture_output=True, text=True, timeout=60)
        assert installed.returncode == 0, installed.stderr
        self.log_path = LOG_DIR / f"agent-{uuid.uuid4().hex[:8]}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([AGENT, "run", "--dir", str(self.state), "--workload-socket", str(self.socket)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.status().get("state") == "serving", what="the Workload API serving")

    @property
    def endpoint(self):
        return f"unix://{self.socket}"

    def status(self):
        try:
            return json.loads((self.state / "workload.json").read_text())
        except (OSError, ValueError):
            return {}

    def logs(self):
        return self.log_path.read_text()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def agents(site):
    started = []

    def start(name, selectors=None):
        agent = WorkloadAgent(*site, name, selectors)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def raw_call(agent, method, header=True, body=b""):
    """A grpcio call on the socket with no SPIFFE library in between; returns the status code."""
    with grpc.insecure_channel(agent.endpoint) as channel:
        call = channel.unary_stream(f"/SpiffeWorkloadAPI/{method}", request_serializer=lambda x: x,
                                    response_deserializer=lambda b: b)
        metadata = [("workload.spiffe.io", "true")] if header else []
        try:
            next(iter(call(body, metadata=metadata, timeout=10)))
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def test_py_spiffe_fetches_the_agents_svid_and_bundle_and_openssl_accepts_the_chain(agents, site, tmp_path):
    core, _ = site
    agent = agents("wl-fetch")
    spiffe_id = agent.package["spiffe_id"]
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o666
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o755
    assert "serving the SPIFFE Workload API" in agent.logs() and str(agent.socket) in agent.logs()

    with WorkloadApiClient(socket_path=agent.endpoint) as client:
        svid = client.fetch_x509_svid()
        assert str(svid.spiffe_id) == spiffe_id
        leaf = svid.leaf
        assert leaf.public_key().public_numbers() == svid.private_key.public_key().public_numbers()
        chain = tmp_path / "chain.pem"
        chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in svid.cert_chain))
        bundles = client.fetch_x509_bundles()
        trust_domain = spiffe_id.split("/")[2]
        bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert bundle is not None and str(bundle.trust_domain) == trust_domain
        roots = tmp_path / "roots.pem"
        roots.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in bundle.x509_authorities))
    # The bundle is the trust domain's root, the one Core serves.
    served = core.api("GET", "/api/trust-bundle").body
    assert x509.load_pem_x509_certificates(roots.read_bytes()) == x509.load_pem_x509_certificates(served)
    verdict = subprocess.run(["openssl", "verify", "-CAfile", str(roots), "-untrusted", str(chain), str(chain)],
                             capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    # The key is PKCS#8 on the wire, as the standard asks (a SEC1 key would start with version 1 and no algorithm).
    with grpc.insecure_channel(agent.endpoint) as channel:
        call = channel.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID", request_serializer=lambda x: x,
                                    response_deserializer=workload_pb2.X509SVIDResponse.FromString)
        raw = next(iter(call(b"", metadata=[("workload.spiffe.io", "true")], timeout=10)))
    pkcs8, _ = der_decoder.decode(raw.svids[0].x509_svid_key)
    assert int(pkcs8[0]) == 0 and str(pkcs8[1][0]) == "1.2.840.10045.2.1"
    assert len(raw.svids) == 1 and raw.svids[0].spiffe_id == spiffe_id
    status = subprocess.run([AGENT, "status", "--dir", str(agent.state)], capture_output=True, text=True, timeout=30)
    assert f"workload:  serving on {agent.socket}" in status.stdout, status.stdout


def test_x509_source_follows_the_rotated_svid(agents):
    agent = agents("wl-rotate")
    updates = []
    # A bundles stream beside it: the renewal changes the SVID, not the root, so it must not be sent again.
    bundle_messages = []
    channel = grpc.insecure_channel(agent.endpoint)
    bundles = channel.unary_stream("/SpiffeWorkloadAPI/FetchX509Bundles", request_serializer=lambda x: x,
                                   response_deserializer=lambda b: b)(b"", metadata=[("workload.spiffe.io", "true")])
    def read_bundles():
        try:
            for message in bundles:
                bundle_messages.append(message)
        except grpc.RpcError:
            pass  # cancelled at the end
    reader = threading.Thread(target=read_bundles, daemon=True)
    reader.start()
    with X509Source(socket_path=agent.endpoint, timeout_in_seconds=10) as source:
        first = source.get_x509_context().default_svid.leaf.serial_number
        wait_for(lambda: agent.status().get("streams") == 2, what="the source's and the bundles stream counted")
        status = subprocess.run([AGENT, "status", "--dir", str(agent.state)], capture_output=True, text=True, timeout=30)
        assert "2 open stream(s)" in status.stdout, status.stdout
        source.subscribe_for_updates(lambda: updates.append(source.get_x509_context().default_svid.leaf.serial_number))
        # The agent renews at half-life (30 s); the source must see the new SVID without asking again.
        wait_for(lambda: any(serial != first for serial in updates), timeout=60, interval=0.2,
                 what="X509Source's update callback with the rotated SVID")
        rotated = next(serial for serial in updates if serial != first)
        on_disk = x509.load_pem_x509_certificates((agent.state / "identity" / "svid.pem").read_bytes())[0]
        assert rotated == on_disk.serial_number
        assert source.get_x509_context().default_svid.leaf.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1)
    assert len(bundle_messages) == 1, "the bundles stream sent again although the root did not change"
    bundles.cancel()
    channel.close()
    assert "SVID renewed" in agent.logs()


def test_the_standards_status_codes_for_bad_calls_and_the_server_keeps_serving(agents):
    agent = agents("wl-bad")
    assert raw_call(agent, "FetchX509SVID", header=False) == grpc.StatusCode.INVALID_ARGUMENT
    assert raw_call(agent, "FetchX509Bundles", header=False) == grpc.StatusCode.INVALID_ARGUMENT
    assert raw_call(agent, "FetchJWTBundles") == grpc.StatusCode.UNIMPLEMENTED
    assert raw_call(agent, "NoSuchMethod") == grpc.StatusCode.UNIMPLEMENTED
    # Bytes that are not an X509SVIDRequest (a truncated length-delimited field).
    assert raw_call(agent, "FetchX509SVID", body=b"\x0a\x05ab") == grpc.StatusCode.INVALID_ARGUMENT
    with WorkloadApiClient(socket_path=agent.endpoint) as client:
        with pytest.raises(Exception, match="UNIMPLEMENTED"):
            client.fetch_jwt_svid(audience={"example"})
        assert str(client.fetch_x509_svid().spiffe_id) == agent.package["spiffe_id"]
    assert agent.process.poll() is None


def test_a_caller_closing_mid_stream_and_1000_connects_leak_nothing(agents):
    agent = agents("wl-leak")
    pid = agent.process.pid

    def descriptors():
        return len(os.listdir(f"/proc/{pid}/fd"))

    with WorkloadApiClient(socket_path=agent.endpoint) as client:
        client.fetch_x509_svid()
    time.sleep(0.5)
    before = descriptors()
    for _ in range(20):  # streams opened and dropped after the first message
        with grpc.insecure_channel(agent.endpoint) as channel:
            call = channel.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID", request_serializer=lambda x: x,
                                        response_deserializer=lambda b: b)
            stream = call(b"", metadata=[("workload.spiffe.io", "true")], timeout=10)
            next(iter(stream))
            stream.cancel()
    for _ in range(1000):  # bare connects and disconnects
        s = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        s.connect(str(agent.socket))
        s.close()
    wait_for(lambda: descriptors() <= before, timeout=20, interval=0.2,
             what=f"the agent's descriptors back to {before} (now {descriptors()})")
    wait_for(lambda: agent.status().get("streams") == 0, timeout=10, what="no stream left open")


def nobody_fetch(agent):
    """py-spiffe run as nobody (uid and gid 65534, no other groups); returns its one line of output."""
    script = ("import sys\nfrom spiffe import WorkloadApiClient\n"
              "try:\n    with WorkloadApiClient(socket_path=sys.argv[1]) as c:\n        print('served', c.fetch_x509_svid().spiffe_id)\n"
              "except Exception as e:\n    print('refused', e)\n")
    result = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "env",
                             f"PYTHONPATH={OTHER_USER_PYTHON}", "/usr/bin/python3", "-S", "-c", script, agent.endpoint],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_caller_under_another_uid_is_served_only_with_a_selector_for_it(agents):
    plain = agents("wl-own-uid")
    answer = nobody_fetch(plain)
    assert answer.startswith("refused") and "PERMISSION_DENIED" in answer, answer
    assert "uid=65534" in plain.logs() and "workload refused" in plain.logs()
    # The agent's own uid (root here) is served when there are no selectors.
    with WorkloadApiClient(socket_path=plain.endpoint) as client:
        assert str(client.fetch_x509_svid().spiffe_id) == plain.package["spiffe_id"]

    for selector in [f"unix:uid:{NOBODY}", "unix:user:nobody", "unix:group:nogroup", f"unix:gid:{NOBODY}"]:
        entitled = agents("wl-" + selector.replace(":", "-").replace("unix-", ""), selectors=[selector])
        answer = nobody_fetch(entitled)
        assert answer == f"served {entitled.package['spiffe_id']}", (selector, answer)
        # With selectors, they alone decide: the agent's own uid is no longer served.
        with WorkloadApiClient(socket_path=entitled.endpoint) as client:
            with pytest.raises(Exception, match="PERMISSION_DENIED"):
                client.fetch_x509_svid()
        entitled.stop()


def test_selectors_of_other_types_are_refused_at_package_creation(site):
    core, poller = site
    for selector, words in [("k8s:ns:default", "not supported"), ("unix:uid:-1", "decimal number"),
                            ("unix:uid:4294967295", "decimal number"), ("unix:user:a b", "no spaces"),
                            ("unix:path:/bin/sh", "not supported")]:
        response = core.api("POST", "/api/edge-packages", {"name": "bad-selector", "component_type": "agent",
                                                           "poller_id": poller.name, "selectors": [selector]})
        assert response.status == 400, (selector, response.status)
        assert words in response.json()["message"], response.json()
    names = [p["name"] for p in core.api("GET", "/api/edge-packages?type=agent").json()["items"]]
    assert "bad-selector" not in names


def test_revocation_ends_the_open_stream_with_permission_denied_and_new_calls_get_it(agents, site):
    core, _ = site
    agent = agents("wl-revoke")
    errors, contexts = [], []
    with WorkloadApiClient(socket_path=agent.endpoint) as client:
        handler = client.stream_x509_contexts(contexts.append, errors.append, retry_connect=False)
        wait_for(lambda: contexts, what="the first X.509 context")
        revoked_at = time.time()
        response = core.api("POST", f"/api/edge-packages/{agent.package['id']}/revoke", {"reason": "test: workload revocation"})
        assert response.status == 200, response.body
        wait_for(lambda: errors, timeout=10, interval=0.05, what="the stream ended by the revocation")
        took = time.time() - revoked_at
        assert "PERMISSION_DENIED" in str(errors[0]), errors
        handler.cancel()
        with pytest.raises(Exception, match="PERMISSION_DENIED"):
            client.fetch_x509_svid()
    assert took < 10, took
    assert raw_call(agent, "FetchX509Bundles") == grpc.StatusCode.PERMISSION_DENIED
    assert agent.process.poll() is None, "the agent keeps answering workloads after the revocation"
    wait_for(lambda: agent.status().get("state") == "revoked", what="status revoked")
    assert not (agent.state / "identity").exists()

    # Restarted without an identity: UNAVAILABLE (py-spiffe would retry), not a refusal.
    agent.process.terminate()
    agent.process.wait(timeout=20)
    agent.process = subprocess.Popen([AGENT, "run", "--dir", str(agent.state), "--workload-socket", str(agent.socket)],
                                     stdout=agent.log, stderr=subprocess.STDOUT)
    wait_for(lambda: agent.status().get("state") == "unavailable", what="status unavailable after the restart")
    assert raw_call(agent, "FetchX509SVID") == grpc.StatusCode.UNAVAILABLE
    status = subprocess.run([AGENT, "status", "--dir", str(agent.state)], capture_output=True, text=True, timeout=30)
    assert "workload:  unavailable on" in status.stdout, status.stdout

    # A new identity installed into the same directory is picked up by the running agent and served.
    package, archive, _ = agent_package(core, "wl-revoke-2", archive_dir=agent.root)
    wait_cached(core, package["id"])
    shutil.rmtree(agent.state / "package")  # what install asks for before a second package
    installed = subprocess.run([AGENT, "install", "--package", str(archive), "--dir", str(agent.state)],
                               capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    wait_for(lambda: agent.status().get("state") == "serving", timeout=15, what="the new identity served")
    with WorkloadApiClient(socket_path=agent.endpoint) as client:
        assert str(client.fetch_x509_svid().spiffe_id) == package["spiffe_id"]


def test_an_svid_that_expires_while_the_poller_is_away_turns_into_unavailable(site, tmp_path_factory):
    core, _ = site
    # A poller of its own, so stopping it leaves the other tests' poller alone.
    away = Poller(core, tmp_path_factory.mktemp("wl-away") / "poller", name="edge-away", extra=["--agent-svid-ttl", "60"])
    agent = None
    try:
        agent = WorkloadAgent(core, away, "wl-expiring")
        errors, contexts = [], []
        with WorkloadApiClient(socket_path=agent.endpoint) as client:
            handler = client.stream_x509_contexts(contexts.append, errors.append, retry_connect=False)
            wait_for(lambda: contexts, what="the first X.509 context")
            away.stop()
            leaf = x509.load_pem_x509_certificates((agent.state / "identity" / "svid.pem").read_bytes())[0]
            left = (leaf.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
            assert 0 < left <= 61, left
            # Served until the SVID expires, not after: the open stream ends UNAVAILABLE (clients retry).
            wait_for(lambda: errors, timeout=left + 15, interval=0.2, what="the stream ended at the SVID's expiry")
            assert "UNAVAILABLE" in str(errors[0]), errors
            assert datetime.datetime.now(datetime.timezone.utc) >= leaf.not_valid_after_utc
            handler.cancel()
        assert raw_call(agent, "FetchX509SVID") == grpc.StatusCode.UNAVAILABLE
        wait_for(lambda: agent.status().get("state") == "unavailable", what="status unavailable (rewritten within 1 s)")
        assert "expired" in agent.status()["detail"], agent.status()
        assert agent.process.poll() is None
    finally:
        if agent is not None:
            agent.stop()
        away.stop()


def test_core_revoking_the_poller_ends_its_agents_workload_streams(site, tmp_path_factory):
    core, _ = site
    doomed = Poller(core, tmp_path_factory.mktemp("wl-doomed") / "poller", name="edge-doomed")
    agent = None
    try:
        agent = WorkloadAgent(core, doomed, "wl-under-doomed")
        errors, contexts = [], []
        with WorkloadApiClient(socket_path=agent.endpoint) as client:
            handler = client.stream_x509_contexts(contexts.append, errors.append, retry_connect=False)
            wait_for(lambda: contexts, what="the first X.509 context")
            # Core revokes the poller's agents with it, but a revoked poller no longer gets its package stream:
            # it learns only that it is revoked itself, and that must end every watch it holds.
            assert core.api("POST", f"/api/edge-packages/{doomed.package_id}/revoke", {"reason": "host lost"}).status == 200
            wait_for(lambda: errors, timeout=30, interval=0.1, what="the stream ended by the poller's revocation")
            assert "PERMISSION_DENIED" in str(errors[0]), errors
            handler.cancel()
        assert "was revoked by Core; the identities it issued are no longer valid" in agent.logs()
        assert "package revoked by Core" not in doomed.logs(), "the poller heard of the agent's package after all"
        assert raw_call(agent, "FetchX509SVID") == grpc.StatusCode.PERMISSION_DENIED
    finally:
        if agent is not None:
            agent.stop()
        doomed.stop()
