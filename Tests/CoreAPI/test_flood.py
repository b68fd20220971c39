"""A flood of anonymous refusals cannot grow the audit log without bound: bad attestations and bad bearer tokens
are audited under a per-source budget, and what the budget holds back is counted in `audit.suppressed` rows.
(The latency side of a flood is a benchmark: scripts/bench-flood.sh, Docs/benchmarks.md.)"""
import threading
import time

import grpc

from conftest import Core

FLOOD = 1500


def audit_rows(core, query):
    rows, cursor = [], None
    while True:
        page = core.api("GET", f"/api/audit?{query}&limit=500" + (f"&cursor={cursor}" if cursor else "")).json()
        rows += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


def test_bad_attestations_are_audited_within_a_budget_and_counted(tmp_path, onboarding):
    pb, grpc_mod = onboarding
    core = Core(data_dir=tmp_path / "core")
    bundle = core.api("GET", "/api/trust-bundle").body
    started = time.time()
    answers = []

    def flood(count):
        with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", grpc.ssl_channel_credentials(root_certificates=bundle)) as channel:
            stub = grpc_mod.CoreOnboardingStub(channel)
            for _ in range(count):
                try:
                    stub.AttestPoller(pb.AttestPollerRequest(join_token="mjt_not-a-token"), timeout=10)
                except grpc.RpcError as error:
                    answers.append(error.code())

    threads = [threading.Thread(target=flood, args=(FLOOD // 6,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    # Meanwhile 50 bad bearer tokens on the HTTP API, from the same address.
    for _ in range(50):
        assert core.request("GET", "/api/edge-packages", token="mot_wrong").status == 401
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    assert answers.count(grpc.StatusCode.UNAUTHENTICATED) == FLOOD, "every bad attestation still gets its answer"
    denied = audit_rows(core, "outcome=denied")
    written = [r for r in denied if r["action"] in ("package.activate", "auth.denied")]
    # A burst of 30, then 30 a minute: the flood wrote a bounded number of rows, not one per attempt.
    assert len(written) <= 30 + int(elapsed / 2) + 2, (len(written), elapsed)
    # An operator is not refused: the budget only holds back audit rows of refused callers.
    assert core.create("edge-1", "poller").status == 201

    assert core.stop() == 0
    core.start()
    try:
        suppressed = audit_rows(core, "action=audit.suppressed")
        assert suppressed, "the held-back refusals must be counted in the audit log"
        counted = sum(int(row["details"]["count"]) for row in suppressed)
        assert counted + len(written) == FLOOD + 50, (counted, len(written))
        assert all(row["source_ip"] == "127.0.0.1" for row in suppressed)
        assert {a for row in suppressed for a in row["details"]["actions"].split()} <= {"package.activate", "auth.denied"}
    finally:
        core.stop()
