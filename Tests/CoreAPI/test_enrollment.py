"""Self-enrollment through the poller (issue 15): real muster-core, muster-poller and muster-agent processes; the
attacks and limits through grpcio with keys made by pyca/cryptography; key checks with openssl."""
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import BIN_DIR, LOG_DIR, SECRETS, Core
from relay import AGENT, Poller, edge_stub, new_key_and_csr, renew, wait_for


def ca_pin(core):
    root = x509.load_pem_x509_certificate(core.api("GET", "/api/trust-bundle").body)
    spki = root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def fingerprint_of(public_key):
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def machine_id_file(tmp_path, name):
    path = tmp_path / f"{name}.machine-id"
    path.write_text(uuid.uuid4().hex + "\n")
    return path, path.read_text().strip()


RUNNING = []


@pytest.fixture(autouse=True)
def no_enroll_left_running():
    """Whatever a test did, no `muster-agent enroll` it started outlives it."""
    yield
    while RUNNING:
        process = RUNNING.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Enroll:
    """`muster-agent enroll` running in the background, its output in a log file (with the other process logs, so
    the session's secrets check reads it too). `pin` defaults to Core's, read from its trust bundle."""

    def __init__(self, core, poller, directory, id_file, *extra, pin=None, preexec_fn=None):
        self.directory = directory
        self.log_path = LOG_DIR / f"enroll-{uuid.uuid4().hex[:8]}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [AGENT, "enroll", "--poller", poller.address, "--ca-pin", pin or ca_pin(core), "--dir", str(directory),
             "--machine-id-file", str(id_file), *extra], stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn)
        RUNNING.append(self.process)

    def wait(self, timeout=90):
        code = self.process.wait(timeout=timeout)
        self.log.close()
        return code, self.log_path.read_text()

    def output(self):
        self.log.flush()
        return self.log_path.read_text()


def cli(core, *args):
    env = {**os.environ, "MUSTER_CORE_URL": core.url, "MUSTER_TOKEN": core.admin}
    return subprocess.run([str(BIN_DIR / "muster"), *args], capture_output=True, text=True, env=env, timeout=60)


def request_for(core, machine_id, status="pending", timeout=60):
    def find():
        for item in core.api("GET", f"/api/enrollments?status={status}").json()["items"]:
            if item["claimed"]["machine_id"] == machine_id:
                return item
        return None
    return wait_for(find, timeout=timeout, interval=0.3, what=f"the {status} enrollment of machine {machine_id}")


def test_enroll_approve_activate(core, tmp_path):
    poller = Poller(core, tmp_path / "poller")
    id_file, machine_id = machine_id_file(tmp_path, "m1")
    agent_dir = tmp_path / "agent"
    enroll = Enroll(core, poller, agent_dir, id_file, "--name", "asked-for")
    try:
        request = request_for(core, machine_id)
        handle = json.loads((agent_dir / "enrollment/request.json").read_text())["handle"]
        SECRETS.add(handle)
        # What the installer reads and what the operator sees are the key on the machine's disk.
        key = serialization.load_pem_private_key((agent_dir / "enrollment/key.pem").read_bytes(), None)
        assert request["key_fingerprint"] == fingerprint_of(key.public_key())
        wait_for(lambda: request["key_fingerprint"] in enroll.output(), what="the fingerprint printed by enroll")
        assert request["key_fingerprint_short"] in enroll.output()
        assert oct((agent_dir / "enrollment").stat().st_mode & 0o777) == "0o700"
        assert oct((agent_dir / "enrollment/key.pem").stat().st_mode & 0o777) == "0o600"
        assert oct((agent_dir / "enrollment/request.json").stat().st_mode & 0o777) == "0o600"
        assert request["poller_id"] == "edge-1" and request["observed"]["poller_id"] == "edge-1"
        assert request["observed"]["source_address"] == "127.0.0.1"
        assert request["requested_name"] == "asked-for" and request["suggested_name"] == "asked-for"
        assert request["claimed"]["hostname"] and request["claimed"]["kernel"] and request["claimed"]["arch"]
        # Loopback is never among the claimed addresses, so the poller's observation differs and Core says so.
        assert "address_mismatch" in [w["code"] for w in request["warnings"]]
        assert core.api("GET", f"/api/enrollments/{request['id']}").json()["id"] == request["id"]

        reader = core.mint("config:read", name="reader")
        refused = core.api("POST", f"/api/enrollments/{request['id']}/approve", {}, token=reader)
        assert refused.status == 403
        assert core.api("POST", f"/api/enrollments/{request['id']}/approve", {"name": "Bad Name"}).status == 400
        approved = core.api("POST", f"/api/enrollments/{request['id']}/approve", {"name": "web-enrolled", "site": "dc-1"})
        assert approved.status == 200, approved.body
        assert approved.json()["status"] == "approved"
        assert core.api("POST", f"/api/enrollments/{request['id']}/approve", {}).status == 409
        assert core.api("POST", f"/api/enrollments/{request['id']}/deny", {"reason": "late"}).status == 409

        code, output = enroll.wait()
        assert code == 0, output
        spiffe_id = "spiffe://blackbox.test/muster/poller/edge-1/agent/web-enrolled"
        assert f"enrolled as {spiffe_id}" in output
        assert not (agent_dir / "enrollment").exists()
        identity = agent_dir / "identity"
        cert_key = subprocess.run(["openssl", "x509", "-in", str(identity / "svid.pem"), "-noout", "-pubkey"],
                                  capture_output=True, text=True, check=True).stdout
        disk_key = subprocess.run(["openssl", "pkey", "-in", str(identity / "svid.key"), "-pubout"],
                                  capture_output=True, text=True, check=True).stdout
        enrolled_key = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        assert cert_key == disk_key == enrolled_key
        uri = subprocess.run(["openssl", "x509", "-in", str(identity / "svid.pem"), "-noout", "-ext", "subjectAltName"],
                             capture_output=True, text=True, check=True).stdout
        assert f"URI:{spiffe_id}" in uri

        done = request_for(core, machine_id, status="activated")
        package = core.api("GET", f"/api/edge-packages/{done['package_id']}").json()
        assert package["status"] == "activated" and package["delivered_via"] == "enrollment"
        assert package["spiffe_id"] == spiffe_id and package["site"] == "dc-1"
        actions = [row["action"] for row in core.api("GET", f"/api/audit?target={request['id']}").json()["items"]]
        assert {"enrollment.request", "enrollment.approve", "enrollment.activate"} <= set(actions)
        assert "package.activate" in [row["action"] for row in
                                      core.api("GET", f"/api/audit?target={done['package_id']}").json()["items"]]
        # The handle is a secret: not in the poller's log, nor in what enroll printed.
        assert handle not in poller.logs() and handle not in output
    finally:
        if enroll.process.poll() is None:
            enroll.process.kill()
        poller.stop()


def test_deny_expire_and_resume(sqlite_core, tmp_path):
    core = sqlite_core
    poller = Poller(core, tmp_path / "poller", extra=["--enrollment-interval", "1"])
    try:
        # Denied: the agent stops with 1 and the reason.
        id_file, machine_id = machine_id_file(tmp_path, "denied")
        enroll = Enroll(core, poller, tmp_path / "a1", id_file)
        request = request_for(core, machine_id)
        assert core.api("POST", f"/api/enrollments/{request['id']}/deny", {}).status == 400
        denied = cli(core, "enrollment", "deny", request["id"], "--reason", "not our machine")
        assert denied.returncode == 0 and "denied" in denied.stdout
        code, output = enroll.wait()
        assert code == 1 and "denied: not our machine" in output, output
        assert not (tmp_path / "a1/identity").exists()

        # No decision within --timeout: exit 5.
        id_file, machine_id = machine_id_file(tmp_path, "slow")
        code, output = Enroll(core, poller, tmp_path / "a2", id_file, "--timeout", "4s").wait()
        assert code == 5 and "expired" in output, output

        # Interrupted mid-wait and run again: the same request, then approved.
        id_file, machine_id = machine_id_file(tmp_path, "resumed")
        # Started as a script's background job would be (SIGINT ignored), it still stops on SIGINT: exit 130 and
        # one line that says how to resume.
        first = Enroll(core, poller, tmp_path / "a3", id_file,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        request = request_for(core, machine_id)
        wait_for(lambda: "waiting" in first.output(), what="the first enroll waiting")
        first.process.send_signal(signal.SIGINT)
        code, output = first.wait(timeout=30)
        assert code == 130, output
        last = output.strip().splitlines()[-1]
        assert last.startswith("muster-agent: interrupted") and f"--dir {tmp_path / 'a3'} to resume" in last, output
        again = Enroll(core, poller, tmp_path / "a3", id_file)
        wait_for(lambda: f"resuming enrollment request {request['id']}" in again.output(), what="the resumed request")
        same = [i for i in core.api("GET", "/api/enrollments").json()["items"] if i["claimed"]["machine_id"] == machine_id]
        assert len(same) == 1
        # The operator's terminal: list, show, and an approval that checks the fingerprint the installer read.
        listing = cli(core, "enrollment", "list", "--status", "pending")
        assert listing.returncode == 0 and listing.stdout.startswith("ID") and request["id"] in listing.stdout
        shown = cli(core, "enrollment", "show", request["id"])
        assert shown.returncode == 0 and request["key_fingerprint"] in shown.stdout
        assert "claimed (by the machine, unverified)" in shown.stdout and "observed (by poller edge-1)" in shown.stdout
        wrong = cli(core, "enrollment", "approve", request["id"], "--fingerprint", "0000-0000-0000-0000")
        assert wrong.returncode == 5 and len(wrong.stderr.strip().splitlines()) == 1 and "do not approve" in wrong.stderr
        assert core.api("GET", f"/api/enrollments/{request['id']}").json()["status"] == "pending"
        approved = cli(core, "enrollment", "approve", request["id"], "--fingerprint", request["key_fingerprint_short"],
                       "--json")
        assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved", approved.stderr
        code, output = again.wait()
        assert code == 0, output

        # Usage errors: exit 2 and one line.
        bad = subprocess.run([AGENT, "enroll", "--poller", poller.address, "--ca-pin", "sha256:00", "--type", "poller"],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    finally:
        poller.stop()


def test_requests_wait_at_the_poller_while_core_is_away(tmp_path):
    core = Core(extra=["--create-rate-limit", "1000"])
    poller = Poller(core, tmp_path / "poller")
    pin = ca_pin(core)
    enroll = None
    try:
        core.stop()
        id_file, machine_id = machine_id_file(tmp_path, "away")
        enroll = Enroll(core, poller, tmp_path / "agent", id_file, pin=pin)
        wait_for(lambda: "waiting" in enroll.output(), timeout=30, what="the request stored at the poller")
        # The poller restarts with the request still unrelayed: nothing is lost.
        poller.stop()
        poller.start()
        assert "enrollments: 1 pending (1 not yet relayed to Core)" in poller.status().stdout
        core.start()
        request = request_for(core, machine_id, timeout=60)
        assert core.api("POST", f"/api/enrollments/{request['id']}/approve", {}).status == 200
        code, output = enroll.wait(timeout=120)
        assert code == 0, output
    finally:
        if enroll and enroll.process.poll() is None:
            enroll.process.kill()
        poller.stop()
        core.stop()


def test_bad_input_limits_and_attacks(onboarding, sqlite_core, tmp_path):
    pb, _ = onboarding
    core = sqlite_core
    poller = Poller(core, tmp_path / "poller", extra=["--max-pending-enrollments", "2"])
    channel, stub = edge_stub(onboarding, poller)

    def facts(machine_id, **changes):
        values = dict(machine_id=machine_id, hostname="edge-box", fqdn="edge-box.example", addresses=["127.0.0.1"],
                      os="debian 12", kernel="6.1.0", arch="x86_64")
        values.update(changes)
        return pb.ClaimedFacts(**values)

    def enroll_call(claimed, csr, **fields):
        return stub.Enroll(pb.EnrollRequest(component_type=fields.get("component_type", "agent"), claimed=claimed,
                                            csr=csr), timeout=10)

    def code_of(call):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        return raised.value.code(), raised.value.details()

    try:
        key, csr = new_key_and_csr()
        machine = uuid.uuid4().hex
        # Malformed input: INVALID_ARGUMENT naming the field, nothing stored (and no rate-limit slot spent).
        assert code_of(lambda: enroll_call(facts(""), csr)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                "claimed.machine_id is required")
        code, message = code_of(lambda: enroll_call(facts(machine, hostname="x" * 300), csr))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "claimed.hostname" in message
        code, message = code_of(lambda: enroll_call(facts(machine, os="debian\x1b[2J"), csr))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "claimed.os" in message
        code, message = code_of(lambda: enroll_call(facts(machine), b"\x30\x03\x02\x01\x00"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "csr" in message
        code, _ = code_of(lambda: enroll_call(facts(machine), csr, component_type="poller"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert core.api("GET", "/api/enrollments").json()["items"] == []

        first = enroll_call(facts(machine), csr)
        SECRETS.add(first.handle)  # a handle is a secret: no process log may hold it
        assert first.key_fingerprint.startswith("sha256:") and len(first.handle) >= 43
        # One request a minute per source address.
        other_key, other_csr = new_key_and_csr()
        code, message = code_of(lambda: enroll_call(facts(machine), other_csr))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in message

        # A guessed handle, or a poll with another key than the request's: refused, no identity.
        code, message = code_of(lambda: stub.EnrollmentStatus(
            pb.EnrollmentStatusRequest(request_id=first.request_id, handle="A" * 43, csr=csr), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
        code, message = code_of(lambda: stub.EnrollmentStatus(
            pb.EnrollmentStatusRequest(request_id=str(uuid.uuid4()), handle=first.handle, csr=csr), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
        forged = pb.EnrollmentStatusRequest(request_id=first.request_id, handle=first.handle, csr=other_csr)
        code, _ = code_of(lambda: stub.EnrollmentStatus(forged, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        own = pb.EnrollmentStatusRequest(request_id=first.request_id, handle=first.handle, csr=csr)
        assert stub.EnrollmentStatus(own, timeout=10).status == "pending"

        request = wait_for(lambda: next(iter(core.api("GET", "/api/enrollments?status=pending").json()["items"]), None),
                           what="the request relayed to Core")
        assert request["id"] == first.request_id and request["key_fingerprint"] == first.key_fingerprint

        # A second request from the same machine ID is flagged on both.
        poller.stop()
        poller.start()  # the rate limit is in memory; a restart forgets it (and keeps the stored request)
        channel.close()
        channel, stub = edge_stub(onboarding, poller)
        second = enroll_call(facts(machine), other_csr)
        SECRETS.add(second.handle)
        flagged = wait_for(lambda: [w["code"] for w in core.api("GET", f"/api/enrollments/{second.request_id}").json()["warnings"]]
                           if core.api("GET", f"/api/enrollments/{second.request_id}").status == 200 else None,
                           what="the second request at Core")
        assert "duplicate_pending" in flagged
        # The pending cap (2 here).
        poller.stop()
        poller.start()
        channel.close()
        channel, stub = edge_stub(onboarding, poller)
        third_key, third_csr = new_key_and_csr()
        code, message = code_of(lambda: enroll_call(facts(uuid.uuid4().hex), third_csr))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "waiting for an operator" in message

        # Approved: the forged poll still gets nothing; the enrolled key gets an SVID for exactly its key.
        assert core.api("POST", f"/api/enrollments/{first.request_id}/approve", {"name": "box-1"}).status == 200
        answer = wait_for(lambda: (lambda a: a if a.status == "approved" else None)(
            stub.EnrollmentStatus(own, timeout=10)), timeout=30, interval=0.5, what="the approval at the poller")
        code, _ = code_of(lambda: stub.EnrollmentStatus(forged, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        leaf = x509.load_der_x509_certificate(answer.svid_chain[0])
        assert fingerprint_of(leaf.public_key()) == first.key_fingerprint == fingerprint_of(key.public_key())
        assert answer.spiffe_id.endswith("/muster/poller/edge-1/agent/box-1")
    finally:
        channel.close()
        poller.stop()


def test_a_machine_that_lost_its_identity_enrolls_again_and_the_approval_revokes_the_old_one(
        sqlite_core, tmp_path, onboarding):
    core = sqlite_core
    poller = Poller(core, tmp_path / "poller", extra=["--enrollment-interval", "1"])
    try:
        id_file, machine_id = machine_id_file(tmp_path, "box")
        first = Enroll(core, poller, tmp_path / "first", id_file)
        request = request_for(core, machine_id)
        assert core.api("POST", f"/api/enrollments/{request['id']}/approve", {"name": "box"}).status == 200
        assert first.wait()[0] == 0
        old = request_for(core, machine_id, status="activated")

        # The disk was wiped: the same machine ID enrolls again with a new key.
        again = Enroll(core, poller, tmp_path / "second", id_file, "--name", "box")
        second = request_for(core, machine_id)
        codes = {w["code"]: w["message"] for w in second["warnings"]}
        assert old["spiffe_id"] in codes["machine_has_identity"] and old["package_id"] in codes["machine_has_identity"]
        assert old["spiffe_id"] in codes["name_taken"]
        assert second["key_fingerprint"] != old["key_fingerprint"]
        # Without revoking, the name is held by the live identity: 409, nothing changes.
        held = core.api("POST", f"/api/enrollments/{second['id']}/approve", {"name": "box"})
        assert held.status == 409 and "revoke" in held.json()["message"]
        assert core.api("GET", f"/api/enrollments/{second['id']}").json()["status"] == "pending"
        # Approving with revoke_previous revokes the old identity in the same step and gives the name to the new key.
        done = core.api("POST", f"/api/enrollments/{second['id']}/approve", {"name": "box", "revoke_previous": True})
        assert done.status == 200, done.body
        revoked = core.api("GET", f"/api/edge-packages/{old['package_id']}").json()
        assert revoked["status"] == "revoked" and second["id"] in revoked["revoke_reason"]
        assert again.wait()[0] == 0
        assert request_for(core, machine_id, status="activated")["spiffe_id"] == old["spiffe_id"]
        # The old key's SVID is refused renewal at the poller once the revocation reached it.
        old_key = serialization.load_pem_private_key((tmp_path / "first/identity/svid.key").read_bytes(), None)
        old_chain = (tmp_path / "first/identity/svid.pem").read_bytes()

        def refused():
            try:
                renew(onboarding, poller, old_key, old_chain)
                return False
            except grpc.RpcError as error:
                return error.code() == grpc.StatusCode.PERMISSION_DENIED
        wait_for(refused, timeout=30, interval=0.5, what="the old identity refused renewal")
    finally:
        poller.stop()
