"""Auth matrix over every endpoint, the OpenAPI document against the served routes, health and metrics."""
import json


# method, path, scope needed (None: public), body
ENDPOINTS = [
    ("POST", "/api/edge-packages", "config:write", {"name": "zz", "component_type": "poller"}),
    ("POST", "/api/edge-packages/bulk", "config:write", {"items": [{"name": "zy", "component_type": "poller"}]}),
    ("GET", "/api/edge-packages", "config:read", None),
    ("GET", "/api/edge-packages/{id}", "config:read", None),
    ("GET", "/api/edge-packages/{id}/download", "config:write", None),
    ("POST", "/api/edge-packages/{id}/revoke", "config:write", {}),
    ("GET", "/api/pollers", "config:read", None),
    ("GET", "/api/audit", "audit:read", None),
    ("GET", "/api/events", "audit:read", None),
    ("GET", "/api/trust-bundle", None, None),
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/openapi.json", None, None),
]
# Enrollments are made only by pollers (gRPC), so here their ids are unknown: the right scope gets 404 (list: 200).
ENROLLMENT_ENDPOINTS = [
    ("GET", "/api/enrollments", "config:read", None),
    ("GET", "/api/enrollments/{id}", "config:read", None),
    ("POST", "/api/enrollments/{id}/approve", "config:write", {}),
    ("POST", "/api/enrollments/{id}/deny", "config:write", {"reason": "no"}),
]
WRONG_SCOPE = {"config:write": "config:read", "config:read": "audit:read", "audit:read": "config:read"}


def test_auth_matrix(core):
    assert core.create("edge-1", "poller").status == 201
    package_id = core.create("a1").json()["id"]
    tokens = {scope: core.mint(scope) for scope in ["config:read", "config:write", "audit:read"]}
    for method, path, scope, body in ENDPOINTS:
        url = path.replace("{id}", package_id)
        if scope is None:
            r = core.request(method, url)
            assert r.status == 200, (path, r.status)
            continue
        none = core.request(method, url, body=body)
        assert none.status == 401 and none.json()["error"] == "unauthorized", path
        bad = core.request(method, url, token="mot_not-a-real-token", body=body)
        assert bad.status == 401 and "not recognized" in bad.json()["message"], path
        wrong = core.request(method, url, token=tokens[WRONG_SCOPE[scope]], body=body)
        assert wrong.status == 403 and scope in wrong.json()["message"], path
        if path != "/api/events":
            right = core.request(method, url, token=tokens[scope], body=body)
            assert right.status in (200, 201), (path, right.status, right.body)
    assert core.api("GET", f"/api/edge-packages/{package_id}").json()["status"] == "revoked"
    denied = core.api("GET", "/api/audit?action=auth.denied&limit=1000").json()["items"]
    assert len(denied) == 3 * 9 and all(d["outcome"] == "denied" and d["source_ip"] == "127.0.0.1" for d in denied)
    assert all("mot_" not in json.dumps(d) for d in denied)
    wrong_scope_rows = [d for d in denied if d["actor"] == "token:tester"]
    assert len(wrong_scope_rows) == 9


def test_enrollment_routes_need_their_scopes(sqlite_core):
    core = sqlite_core
    tokens = {scope: core.mint(scope) for scope in ["config:read", "config:write", "audit:read"]}
    unknown = "8f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5"
    for method, path, scope, body in ENROLLMENT_ENDPOINTS:
        url = path.replace("{id}", unknown)
        assert core.request(method, url, body=body).status == 401, path
        wrong = core.request(method, url, token=tokens[WRONG_SCOPE[scope]], body=body)
        assert wrong.status == 403 and scope in wrong.json()["message"], path
        right = core.request(method, url, token=tokens[scope], body=body)
        expected = 200 if "{id}" not in path else 404
        assert right.status == expected and (expected == 200 or right.json()["error"] == "not_found"), (path, right.body)
    assert core.api("GET", "/api/enrollments?status=maybe").status == 400
    assert core.api("GET", "/api/enrollments?cursor=nope").status == 400


def test_openapi_matches_the_routes(sqlite_core):
    core = sqlite_core
    document = core.request("GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    served = {(m.lower(), p) for m, p, _, _ in ENDPOINTS + ENROLLMENT_ENDPOINTS}
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert documented == served
    for method, path, scope, _ in ENDPOINTS + ENROLLMENT_ENDPOINTS:
        op = document["paths"][path][method.lower()]
        assert op.get("x-muster-scope") == scope
    unknown = core.request("GET", "/api/enrollments-that-do-not-exist")
    assert unknown.status == 404 and unknown.json()["error"] == "not_found"


def test_trust_bundle_health_and_metrics(sqlite_core):
    core = sqlite_core
    pem = core.request("GET", "/api/trust-bundle")
    assert pem.status == 200 and pem.body.startswith(b"-----BEGIN CERTIFICATE-----")
    spiffe = core.request("GET", "/api/trust-bundle?format=spiffe").json()
    assert spiffe["keys"][0]["use"] == "x509-svid"
    assert core.request("GET", "/api/trust-bundle?format=der").status == 400
    assert core.request("GET", "/healthz").json() == {"status": "ok"}
    assert core.request("GET", "/readyz").json() == {"status": "ready"}
    core.request("GET", "/api/edge-packages")
    metrics = core.request("GET", "/metrics").body.decode()
    assert 'muster_http_requests_total{method="GET",route="/api/edge-packages",status="401"}' in metrics
    assert "muster_database_up 1" in metrics
    assert "mot_" not in metrics and "mjt_" not in metrics
