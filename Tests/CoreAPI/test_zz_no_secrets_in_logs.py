"""Runs last: no log written by any Core process in this run contains a token seen by the tests."""
from conftest import LOG_DIR, SECRETS


def test_logs_of_the_whole_run_hold_no_secret():
    logs = sorted(LOG_DIR.glob("*.log"))
    assert logs, "no Core logs were captured"
    assert len(SECRETS) >= 5, "the run saw too few secrets for this check to mean anything"
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "created the admin token" in text
    for secret in SECRETS:
        assert secret not in text
    assert "mjt_" not in text and "mot_" not in text
