"""The relay under revocation, a Core outage, poller restarts and kill -9: real processes throughout."""
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
import threading
import time

import grpc
import pytest

from conftest import Core
from relay import Poller, agent_package, edge_stub, join, new_key_and_csr, pem_chain, renew, status_of, wait_cached, wait_for


@pytest.fixture
def poller(sqlite_core, tmp_path):
    instance = Poller(sqlite_core, tmp_path / "poller")
    yield instance
    instance.stop()


def refused_code(call):
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), refused.value.details()


def test_revoked_before_the_join_is_refused(sqlite_core, poller, onboarding):
    core = sqlite_core
    cached, _, cached_token = agent_package(core, "cached-then-revoked")
    wait_cached(core, cached["id"])
    assert core.api("POST", f"/api/edge-packages/{cached['id']}/revoke", {"reason": "test"}).status == 200
    # Revoked before the poller ever held it: the poller is stopped while the package is created and revoked.
    poller.stop()
    never, _, never_token = agent_package(core, "never-cached")
    assert core.api("POST", f"/api/edge-packages/{never['id']}/revoke", {}).status == 200
    poller.start()

    generic = (grpc.StatusCode.UNAUTHENTICATED, "join token not accepted (unknown, already used, expired or revoked)")
    wait_for(lambda: "package revoked by Core" in poller.logs(), what="revocation applied by the poller")
    assert refused_code(lambda: join(onboarding, poller, cached_token)) == generic
    assert refused_code(lambda: join(onboarding, poller, never_token)) == generic
    assert "package revoked" in poller.logs()
    assert status_of(core, cached["id"]) == "revoked" and status_of(core, never["id"]) == "revoked"


def test_revoked_after_the_join_renewal_is_denied_within_a_second(sqlite_core, poller, onboarding):
    core = sqlite_core
    package, _, token = agent_package(core, "to-revoke")
    wait_cached(core, package["id"])
    key, joined = join(onboarding, poller, token)
    chain = pem_chain(joined.svid_chain)
    renew(onboarding, poller, key, chain)  # renews while the package is live
    wait_for(lambda: status_of(core, package["id"]) == "activated", what="activation at Core")

    assert core.api("POST", f"/api/edge-packages/{package['id']}/revoke", {"reason": "compromised"}).status == 200
    revoked_at = time.monotonic()
    while True:
        try:
            renew(onboarding, poller, key, chain)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "revoked" in error.details()
            break
        assert time.monotonic() - revoked_at < 1.0, "the poller still renewed a revoked identity a second after the revocation"
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0


def test_core_outage_agents_join_and_renew_and_activations_arrive_once(sqlite_core, poller, onboarding):
    core = sqlite_core
    packages = [agent_package(core, f"outage-{i}") for i in range(3)]
    for package, _, _ in packages:
        wait_cached(core, package["id"])
    assert core.stop() == 0

    # Core is gone: agents still join and renew through the poller.
    joined = {}
    for package, _, token in packages[:2]:
        key, response = join(onboarding, poller, token)
        joined[package["id"]] = (key, pem_chain(response.svid_chain))
    for key, chain in joined.values():
        renew(onboarding, poller, key, chain)
    # The poller restarts while Core is still down: its cache (the third token) and outbox (two activations) survive.
    assert poller.stop() == 0
    poller.start()
    third, _, third_token = packages[2]
    join(onboarding, poller, third_token)
    status = poller.status()
    assert "outbox: 3 activations waiting for Core" in status.stdout, status.stdout
    assert "unreachable" in status.stdout

    core.start()
    for package, _, _ in packages:
        wait_for(lambda: status_of(core, package["id"]) == "activated", timeout=40, what="activation delivered after the outage")
    wait_for(lambda: "outbox: 0 activations" in poller.status().stdout, what="outbox drained")
    for package, _, _ in packages:
        rows = core.api("GET", f"/api/audit?target_id={package['id']}&action=package.activate").json()["items"]
        assert [(r["outcome"], r["actor"]) for r in rows] == [("ok", "poller:edge-1")], rows
    activated = core.api("GET", "/api/edge-packages?status=activated&type=agent").json()["items"]
    assert sorted(p["id"] for p in activated) == sorted(p["id"] for p, _, _ in packages)


def test_joins_racing_for_one_token_in_one_group_commit_redeem_it_once(sqlite_core, poller, onboarding):
    core = sqlite_core
    pb, _ = onboarding
    packages = [agent_package(core, f"race-{i}") for i in range(4)]
    for package, _, _ in packages:
        wait_cached(core, package["id"])
    # Eight joins for every token, on connections already open and released together, so that the poller's
    # group commits hold the same token more than once.
    attempts = [(package, token) for package, _, token in packages for _ in range(8)]
    stubs = [edge_stub(onboarding, poller) for _ in attempts]
    for channel, _ in stubs:
        grpc.channel_ready_future(channel).result(timeout=10)
    barrier = threading.Barrier(len(attempts))
    joined = {}

    def attempt(index):
        (package, token), (_, stub) = attempts[index], stubs[index]
        key, csr = new_key_and_csr()
        barrier.wait()
        try:
            response = stub.Join(pb.JoinRequest(join_token=token, csr=csr), timeout=20)
            joined[package["id"]] = (key, pem_chain(response.svid_chain))
            return package["id"], response.spiffe_id
        except grpc.RpcError as error:
            return package["id"], (error.code(), error.details())

    with ThreadPoolExecutor(len(attempts)) as pool:
        results = list(pool.map(attempt, range(len(attempts))))
    for channel, _ in stubs:
        channel.close()
    refusal = (grpc.StatusCode.UNAUTHENTICATED, "join token not accepted (unknown, already used, expired or revoked)")
    for package, _, _ in packages:
        outcomes = [outcome for package_id, outcome in results if package_id == package["id"]]
        assert [o for o in outcomes if isinstance(o, str)] == [f"spiffe://blackbox.test/muster/poller/edge-1/agent/{package['name']}"], outcomes
        assert outcomes.count(refusal) == 7, outcomes
    status = poller.status().stdout
    assert "0 pending, 4 redeemed" in status, status
    # Each winner's SVID is the one the poller recorded for its token: it renews.
    for key, chain in joined.values():
        renew(onboarding, poller, key, chain)
    # Core hears of each activation once, and of each refused join.
    for package, _, _ in packages:
        def audited():
            rows = core.api("GET", f"/api/audit?target_id={package['id']}&action=package.activate").json()["items"]
            return rows if len(rows) >= 8 else None
        rows = wait_for(audited, what="the activation and the refused joins audited at Core")
        assert sorted(r["outcome"] for r in rows) == ["denied"] * 7 + ["ok"], rows
        assert status_of(core, package["id"]) == "activated"


def test_kill_9_during_joins_never_redeems_a_token_twice(sqlite_core, poller, onboarding):
    core = sqlite_core
    packages = [agent_package(core, f"burst-{i}") for i in range(24)]
    for package, _, _ in packages:
        wait_cached(core, package["id"])
    wins = {package["id"]: [] for package, _, _ in packages}
    lock = threading.Lock()

    def attempt(package_id, token, rounds):
        for _ in range(rounds):
            try:
                _, response = join(onboarding, poller, token)
                with lock:
                    wins[package_id].append(response.svid_chain[0])
            except grpc.RpcError:
                pass

    # Two clients race for every token while the poller is killed mid-burst; then everyone tries again.
    threads = [threading.Thread(target=attempt, args=(p["id"], t, 3)) for p, _, t in packages for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    poller.stop(sig=signal.SIGKILL)
    for thread in threads:
        thread.join()
    poller.start()
    threads = [threading.Thread(target=attempt, args=(p["id"], t, 2)) for p, _, t in packages for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(len(certificates) <= 1 for certificates in wins.values()), {k: len(v) for k, v in wins.items()}
    won = [package_id for package_id, certificates in wins.items() if certificates]
    assert won, "no join succeeded at all"
    status = poller.status().stdout
    redeemed = int(status.split("pending, ")[1].split(" redeemed")[0])
    # A token redeemed just before the kill may have lost its answer, never its single use.
    assert len(won) <= redeemed <= len(packages)
    wait_for(lambda: len(core.api("GET", "/api/edge-packages?status=activated&type=agent&limit=100").json()["items"]) == redeemed,
             timeout=30, what="every local redemption reported to Core")


def test_a_join_during_an_outage_outlives_the_expiry_cores_reaper_saw(tmp_path, onboarding):
    """Redeemed at the poller within its TTL while Core was down; Core's reaper expired it meanwhile. The report
    corrects the expiry, and the poller never treats Core's expiry as a revocation."""
    core = Core(extra=["--create-rate-limit", "1000", "--reaper-interval", "1"])
    poller = Poller(core, tmp_path / "poller")
    try:
        package, _, token = agent_package(core, "slow-report", ttl_seconds=60)
        wait_cached(core, package["id"])
        assert core.stop() == 0
        key, joined = join(onboarding, poller, token)
        assert poller.stop() == 0
        expires = datetime.fromisoformat(package["expires_at"].replace("Z", "+00:00")).timestamp()
        time.sleep(max(0, expires - time.time()) + 1.5)
        core.start()
        wait_for(lambda: status_of(core, package["id"]) == "expired", what="Core's reaper expiring the package")
        poller.start()
        wait_for(lambda: status_of(core, package["id"]) == "activated", timeout=30, what="the late report correcting the expiry")
        shown = core.api("GET", f"/api/edge-packages/{package['id']}").json()
        assert shown["expired_at"] is None and shown["activated_from_ip"] == "127.0.0.1"
        rows = core.api("GET", f"/api/audit?target_id={package['id']}&action=package.activate").json()["items"]
        assert [(r["outcome"], r["details"].get("corrects")) for r in rows] == [("ok", "expiry")]
        renew(onboarding, poller, key, pem_chain(joined.svid_chain))  # still renewable: the expiry never reached the poller
    finally:
        poller.stop()
        core.stop()


def test_a_poller_revoked_at_core_stops_onboarding(sqlite_core, poller, onboarding):
    core = sqlite_core
    joined_package, _, joined_token = agent_package(core, "before-poller-revoked")
    waiting, _, waiting_token = agent_package(core, "still-waiting")
    wait_cached(core, joined_package["id"])
    wait_cached(core, waiting["id"])
    key, joined = join(onboarding, poller, joined_token)

    assert core.api("POST", f"/api/edge-packages/{poller.package_id}/revoke", {"reason": "host lost"}).status == 200
    wait_for(lambda: "REVOKED by Core" in poller.status().stdout, what="the poller learning it was revoked")
    stopped = (grpc.StatusCode.FAILED_PRECONDITION, "this poller was revoked by Core and no longer onboards agents")
    assert refused_code(lambda: join(onboarding, poller, waiting_token)) == stopped
    assert refused_code(lambda: renew(onboarding, poller, key, pem_chain(joined.svid_chain))) == stopped
    assert "refused this poller as revoked" in poller.logs()

    # Revocation is final: a restarted poller still refuses, without asking Core again.
    assert poller.stop() == 0
    poller.start()
    assert refused_code(lambda: join(onboarding, poller, waiting_token)) == stopped
    # At Core, the poller's agent packages were revoked with it, each with its own audit row.
    for package in (joined_package, waiting):
        shown = core.api("GET", f"/api/edge-packages/{package['id']}").json()
        assert shown["status"] == "revoked" and shown["revoke_reason"] == "its poller edge-1 was revoked"
        rows = core.api("GET", f"/api/audit?target_id={package['id']}&action=package.revoke").json()["items"]
        assert [(r["actor"], r["reason"]) for r in rows] == [("token:admin", "its poller edge-1 was revoked")]
