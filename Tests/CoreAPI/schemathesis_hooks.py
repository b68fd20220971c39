"""Schemathesis hooks for test_schemathesis.py: a refused request (4xx) must change nothing stored. Before each call
the packages and pollers are read with the admin token; after a refusal they are read again and must be identical
(the audit log is left out on purpose: refusals are audited)."""
import json
import os
import urllib.request

import schemathesis

URL = os.environ.get("MUSTER_ST_URL", "")
TOKEN = os.environ.get("MUSTER_ST_TOKEN", "")
_before = {}


def snapshot():
    state = {}
    for path in ("/api/edge-packages?limit=1000", "/api/pollers"):
        request = urllib.request.Request(URL + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            state[path] = json.loads(response.read())["items"]
    return state


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _before[id(case)] = snapshot()


@schemathesis.check
def refused_request_changes_nothing(ctx, response, case):
    before = _before.pop(id(case), None)
    if before is None or not 400 <= response.status_code < 500:
        return None
    after = snapshot()
    if after != before:
        raise AssertionError(f"{case.method} {case.path} was refused with {response.status_code} but changed what Core stores")
    return None
