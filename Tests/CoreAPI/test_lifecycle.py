"""The package lifecycle over HTTP, on SQLite and on PostgreSQL."""
import os
import subprocess
import tempfile
import threading
import urllib.request

from conftest import SECRETS, open_archive


def test_create_list_download_revoke(core):
    poller = core.create("edge-1", "poller", site="lab", selectors=["unix:uid:0"], notes="rack 4")
    assert poller.status == 201, poller.body
    p = poller.json()
    assert p["status"] == "created" and p["spiffe_id"] == "spiffe://blackbox.test/muster/poller/edge-1"
    assert p["join_command"] is None and "token" not in p and not any("mjt_" in str(v) for v in p.values())
    agent = core.create("web-01", ttl_seconds=600).json()
    assert agent["spiffe_id"] == "spiffe://blackbox.test/muster/poller/edge-1/agent/web-01"
    assert agent["join_command"].startswith("muster-agent join --poller ") and "--ca-pin 'sha256:" in agent["join_command"]
    checker = core.create("ping-01", "checker").json()
    assert checker["spiffe_id"].endswith("/poller/edge-1/checker/ping-01")

    listing = core.api("GET", "/api/edge-packages").json()
    assert [i["name"] for i in listing["items"]] == ["ping-01", "web-01", "edge-1"] and listing["next_cursor"] is None
    assert [i["name"] for i in core.api("GET", "/api/edge-packages?type=poller").json()["items"]] == ["edge-1"]
    assert len(core.api("GET", "/api/edge-packages?poller=edge-1").json()["items"]) == 2
    page = core.api("GET", "/api/edge-packages?limit=2").json()
    rest = core.api("GET", f"/api/edge-packages?limit=2&cursor={page['next_cursor']}").json()
    assert [i["name"] for i in page["items"] + rest["items"]] == ["ping-01", "web-01", "edge-1"]

    download = core.api("GET", f"/api/edge-packages/{agent['id']}/download")
    assert download.status == 200 and download.headers["Content-Type"] == "application/gzip"
    files = open_archive(download.body)
    assert set(files) == {"manifest.json", "join-token", "bundle.pem", "bundle.spiffe.json", "muster-agent.env", "README.txt"}
    assert files["join-token"][0] == 0o600 and files["join-token"][1].startswith(b"mjt_")
    assert b"BEGIN CERTIFICATE" in files["bundle.pem"][1]
    shown = core.api("GET", f"/api/edge-packages/{agent['id']}").json()
    assert shown["status"] == "delivered" and shown["delivered_via"] == "download" and shown["downloaded_at"]

    again = core.api("GET", f"/api/edge-packages/{agent['id']}/download")
    assert again.status == 410 and again.json()["error"] == "gone"

    revoked = core.api("POST", f"/api/edge-packages/{agent['id']}/revoke", {"reason": "decommissioned"})
    assert revoked.status == 200 and revoked.json()["status"] == "revoked" and revoked.json()["revoke_reason"] == "decommissioned"
    twice = core.api("POST", f"/api/edge-packages/{agent['id']}/revoke")
    assert twice.status == 409 and twice.json()["error"] == "conflict"
    assert core.api("GET", f"/api/edge-packages/{checker['id']}/download").status == 200
    missing = core.api("GET", "/api/edge-packages/no-such-id")
    assert missing.status == 404 and missing.json() == {"error": "not_found", "message": "no package with id no-such-id"}
    assert core.api("GET", "/api/edge-packages?status=revoked").json()["items"][0]["id"] == agent["id"]

    audit = core.api("GET", f"/api/audit?target={agent['id']}").json()["items"]
    assert [a["action"] for a in audit] == ["package.revoke", "package.download", "package.create"]
    assert all(a["actor"] == "token:admin" and a["source_ip"] == "127.0.0.1" for a in audit)
    assert core.api("GET", "/api/audit?action=package.create&limit=1").json()["next_cursor"]

    events = read_events(core, after=0, count=6)
    assert [e[1] for e in events] == ["package.created"] * 3 + ["package.delivered", "package.revoked", "package.delivered"]
    pollers = core.api("GET", "/api/pollers").json()["items"]
    assert pollers[0]["name"] == "edge-1" and pollers[0]["status"] == "pending"


def read_events(core, after, count, token=None):
    req = urllib.request.Request(f"{core.url}/api/events?after={after}")
    req.add_header("Authorization", f"Bearer {token or core.admin}")
    events, current = [], {}
    with urllib.request.urlopen(req, timeout=15) as stream:
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in current:
                    events.append((int(current["id"]), current["event"], current["data"]))
                    if len(events) == count:
                        return events
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value.strip()
    return events


def test_bad_input_is_refused_and_changes_nothing(core):
    assert core.create("edge-1", "poller").status == 201
    cases = [
        ({"component_type": "agent", "poller_id": "edge-1"}, "name is required"),
        ({"name": "Bad Name", "component_type": "poller"}, "a-z, 0-9"),
        ({"name": "a", "component_type": "robot"}, "component_type must be"),
        ({"name": "a", "component_type": "agent"}, "poller_id is required"),
        ({"name": "a", "component_type": "poller", "poller_id": "edge-1"}, "poller_id is for agent"),
        ({"name": "a", "component_type": "agent", "poller_id": "edge-1", "ttl_seconds": 10}, "ttl_seconds must be from 60"),
        ({"name": "a", "component_type": "agent", "poller_id": "edge-1", "ttl_seconds": 90000}, "ttl_seconds must be from 60"),
        ({"name": "a", "component_type": "agent", "poller_id": "edge-1", "ttl_seconds": True}, "whole number"),
        ({"name": "a", "component_type": "agent", "poller_id": "edge-1", "selectors": ["nocolon"]}, "is not type:value"),
        ({"name": "a", "component_type": "agent", "poller_id": "edge-1", "color": "red"}, "unknown field 'color'"),
    ]
    for body, fragment in cases:
        r = core.api("POST", "/api/edge-packages", body)
        assert r.status == 400, (body, r.body)
        assert r.json()["error"] == "bad_request" and fragment in r.json()["message"], (body, r.json())
    ghost = core.create("a", poller_id="ghost")
    assert ghost.status == 422 and "no live poller" in ghost.json()["message"]
    dup = core.create("edge-1", "poller")
    assert dup.status == 409
    for raw in [b"not json", b"[1,2]", b""]:
        r = core.request("POST", "/api/edge-packages", token=core.admin, raw=raw)
        assert r.status == 400 and r.json()["error"] == "bad_request"
    assert core.request("POST", "/api/edge-packages", token=core.admin, raw=b"{" + b" " * 70000 + b"}").status == 413
    for query, fragment in [("limit=0", "limit"), ("status=lost", "status must be"), ("cursor=zzz", "cursor"), ("colour=1", "unknown query")]:
        r = core.api("GET", f"/api/edge-packages?{query}")
        assert r.status == 400 and fragment in r.json()["message"], query
    assert core.api("GET", "/api/audit?since=yesterday").status == 400
    assert core.api("DELETE", "/api/edge-packages").status == 405
    assert [i["name"] for i in core.api("GET", "/api/edge-packages").json()["items"]] == ["edge-1"]


def test_bulk_create_makes_every_package_in_one_step_or_none(core):
    """POST /api/edge-packages/bulk: a poller and its agents in one request, each with its audit row and event;
    any bad item refuses the whole request, named by its place, and nothing is stored."""
    items = [{"name": "site-9", "component_type": "poller"}] + [
        {"name": f"a{n}", "component_type": "agent" if n % 2 else "checker", "poller_id": "site-9", "site": "s9"}
        for n in range(300)]
    made = core.api("POST", "/api/edge-packages/bulk", {"items": items})
    assert made.status == 201, made.body[:300]
    views = made.json()["items"]
    assert [v["name"] for v in views] == [i["name"] for i in items]
    assert all(v["status"] == "created" and v["created_by"] == "token:admin" for v in views)
    assert views[1]["spiffe_id"].endswith("/muster/poller/site-9/checker/a0") and "join_command" in views[2]
    listed = core.api("GET", "/api/edge-packages?poller=site-9&limit=1000").json()["items"]
    assert len(listed) == 300
    audit = core.api("GET", "/api/audit?action=package.create&limit=1000").json()["items"]
    assert len(audit) == 301
    # Every package was downloadable on its own, as after a single create.
    assert core.api("GET", f"/api/edge-packages/{views[5]['id']}/download").status == 200

    def refused(body, status, fragment):
        answer = core.api("POST", "/api/edge-packages/bulk", body)
        assert answer.status == status and fragment in answer.json()["message"], (status, answer.body[:300])

    good = {"name": "b0", "component_type": "agent", "poller_id": "site-9"}
    refused({"items": [good, {"name": "Bad", "component_type": "agent", "poller_id": "site-9"}]}, 400, "items[1]: ")
    refused({"items": [good, {"name": "b1", "component_type": "agent"}]}, 400, "items[1]: poller_id is required")
    refused({"items": [good, {"name": "b1", "component_type": "agent", "poller_id": "ghost"}]}, 422, "items[1]: no live poller")
    refused({"items": [good, dict(good)]}, 409, "items[0] and items[1] both name")
    refused({"items": [good, {"name": "a7", "component_type": "agent", "poller_id": "site-9"}]}, 409, "items[1]: a live package already holds")
    refused({"items": []}, 400, "1 to 1000")
    refused({"items": [good] * 1001}, 400, "not 1001")
    refused({"items": [good, 7]}, 400, "items[1] is not a JSON object")
    refused({"packages": [good]}, 400, "unknown field 'packages'")
    refused({}, 400, "items is required")
    assert core.api("GET", "/api/edge-packages?poller=site-9&limit=1000").json()["items"].__len__() == 300
    assert not [p for p in core.api("GET", "/api/edge-packages?limit=1000").json()["items"] if p["name"] == "b0"]
    assert len(core.api("GET", "/api/audit?action=package.create&limit=1000").json()["items"]) == 301


def test_a_bulk_create_counts_against_the_rate_limit_by_its_size(tmp_path):
    from conftest import Core
    core = Core(extra=["--create-rate-limit", "5"])
    try:
        assert core.create("edge-1", "poller").status == 201
        agents = lambda names: {"items": [{"name": n, "component_type": "agent", "poller_id": "edge-1"} for n in names]}
        too_big = core.api("POST", "/api/edge-packages/bulk", agents([f"x{n}" for n in range(6)]))
        assert too_big.status == 429 and "exceed this token's 5 per minute" in too_big.json()["message"]
        assert core.api("POST", "/api/edge-packages/bulk", agents(["a1", "a2", "a3"])).status == 201
        limited = core.api("POST", "/api/edge-packages/bulk", agents(["a4", "a5"]))
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        assert core.create("a4").status == 201, "the refused bulk took nothing from the budget"
        names = {p["name"] for p in core.api("GET", "/api/edge-packages?limit=100").json()["items"]}
        assert names == {"edge-1", "a1", "a2", "a3", "a4"}
    finally:
        core.stop()


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    from conftest import Core
    core = Core(extra=["--create-rate-limit", "3"])
    try:
        assert core.create("edge-1", "poller").status == 201
        assert core.create("a1").status == 201 and core.create("a2").status == 201
        limited = core.create("a3")
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        other = core.mint("config:write", name="second")
        assert core.api("POST", "/api/edge-packages", {"name": "a4", "component_type": "agent", "poller_id": "edge-1"}, token=other).status == 201
    finally:
        core.stop()


def test_the_cli_against_core(sqlite_core):
    core = sqlite_core
    env = {**os.environ, "MUSTER_CORE_URL": core.url, "MUSTER_TOKEN": core.admin}
    from conftest import BIN_DIR
    muster = str(BIN_DIR / "muster")

    def run(*args, env=env):
        return subprocess.run([muster, *args], capture_output=True, text=True, env=env, timeout=60)

    created = run("package", "create", "--name", "edge-1", "--type", "poller", "--site", "lab")
    assert created.returncode == 0 and "spiffe://blackbox.test/muster/poller/edge-1" in created.stdout
    agent = run("package", "create", "--name", "web-01", "--type", "agent", "--poller", "edge-1", "--ttl", "30m", "--json")
    assert agent.returncode == 0
    import json
    agent_id = json.loads(agent.stdout)["id"]
    assert json.loads(agent.stdout)["ttl_seconds"] == 1800
    shown = run("package", "show", agent_id)
    assert shown.returncode == 0 and "muster-agent join --poller" in shown.stdout
    listing = run("package", "list", "--type", "agent")
    assert listing.returncode == 0 and listing.stdout.splitlines()[0].startswith("ID") and "web-01" in listing.stdout
    out = tempfile.mktemp(suffix=".tar.gz")
    download = run("package", "download", agent_id, "-o", out)
    assert download.returncode == 0 and "muster-agent join" in download.stdout
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    listing = subprocess.run(["tar", "-tzvf", out], capture_output=True, text=True, check=True).stdout
    assert "join-token" in listing and "manifest.json" in listing
    subprocess.run(["tar", "-xzf", out, "-C", os.path.dirname(out), "join-token"], check=True)
    SECRETS.add(open(os.path.join(os.path.dirname(out), "join-token")).read().strip())

    again = run("package", "download", agent_id, "-o", out + ".2")
    assert again.returncode == 5 and again.stderr.startswith("muster: ") and len(again.stderr.strip().splitlines()) == 1
    assert run("package", "show", "nope").returncode == 4
    assert run("package", "revoke", agent_id, "--reason", "test").returncode == 0
    assert run("package", "revoke", agent_id).returncode == 5
    assert run("package", "list", "--token", "mot_wrong").returncode == 3
    assert run("package", "list", env={k: v for k, v in env.items() if k != "MUSTER_TOKEN"}).returncode == 3
    assert run("package", "create", "--name", "x").returncode == 2
    assert run("package", "create", "--name", "Bad!", "--type", "poller").returncode == 2
    assert run("package", "list", "--core", "http://127.0.0.1:1").returncode == 1
    audit = run("audit", "--action", "package.revoke", "--json")
    assert audit.returncode == 0 and json.loads(audit.stdout)["items"][0]["reason"] == "test"
    assert "edge-1" in run("poller", "list").stdout
    events = run("events", "--after", "0", "--count", "3", "--json")
    assert events.returncode == 0
    assert [json.loads(line)["type"] for line in events.stdout.splitlines()] == ["package.created", "package.created", "package.delivered"]


def test_concurrent_downloads_reveal_the_token_once(core):
    assert core.create("edge-1", "poller").status == 201
    package = core.create("a1").json()
    results = []

    def grab():
        results.append(core.api("GET", f"/api/edge-packages/{package['id']}/download"))

    threads = [threading.Thread(target=grab) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == [200] + [410] * 19
    for r in results:
        if r.status == 200:
            open_archive(r.body)
