"""Accessibility of every console page (axe-core in Chromium: no serious or critical violation), keyboard-only
operation, times in the browser's zone with UTC on hover, and the screenshots for Docs/ui.md."""
import csv as csvlib
import io

import pytest
from axe_selenium_python import Axe
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser import Browser, remember_page_secrets
from conftest import Core
import subprocess

from relay import AGENT, Poller, wait_for
from test_enrollment import ca_pin


def violations(browser):
    axe = Axe(browser.driver)
    axe.inject()
    results = axe.run()
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    return bad, axe.report(bad), results


@pytest.fixture
def fleet(tmp_path):
    """A Core with a poller, an agent package, a revoked package and some audit rows."""
    core = Core(extra=["--create-rate-limit", "1000"])
    poller = Poller(core, tmp_path / "poller")
    agent = core.create("probe-1", "agent", poller_id="edge-1", notes="rack 2").json()
    revoked = core.create("old-poller", "poller").json()
    core.api("POST", f"/api/edge-packages/{revoked['id']}/revoke", {"reason": "replaced"})
    # A machine waiting for approval, so the Approvals page shows a request card.
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("5f3a91c20b7e44d1a2b3c4d5e6f70812\n")
    enroll = subprocess.Popen([AGENT, "enroll", "--poller", poller.address, "--ca-pin", ca_pin(core), "--dir",
                               str(tmp_path / "enrolling"), "--machine-id-file", str(machine_id), "--timeout", "300s"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: core.api("GET", "/api/enrollments?status=pending").json()["items"], what="a pending request")
    except AssertionError:
        enroll.kill()
        raise
    browser = Browser(core, tmp_path)
    yield core, browser, agent
    browser.close()
    enroll.kill()
    enroll.wait()
    poller.stop()
    core.stop()


def test_every_page_has_no_serious_or_critical_axe_violation(fleet):
    core, browser, agent = fleet
    browser.get("/login")
    bad, report, results = violations(browser)
    assert not bad, report
    assert results["passes"], "axe ran its rules"
    browser.shot("login")
    browser.sign_in(core.admin)
    pages = [("packages", "/"), ("package-agent", f"/packages/{agent['id']}"), ("pollers", "/pollers"),
             ("audit", "/audit"), ("events", "/events"), ("packages-filtered", "/?status=revoked&q=old"),
             ("approvals", "/enrollments")]
    for name, path in pages:
        browser.get(path)
        bad, report, _ = violations(browser)
        assert not bad, f"{path}: {report}"
        browser.shot(name)
    # The drawer open, a form with errors, and the hand-over page are pages too.
    browser.get("/")
    browser.click("#create summary")
    browser.find("#c-name").send_keys("Not OK")
    browser.click("#create button[type=submit]")
    browser.wait(lambda: browser.finds("#e-name"), what="the field errors")
    bad, report, _ = violations(browser)
    assert not bad, f"create errors: {report}"
    browser.find("#c-name").clear()
    browser.find("#c-name").send_keys("probe-2")
    browser.click("input[name=component_type][value=agent]")
    browser.find("#c-poller").send_keys("edge-1")
    browser.click("#create button[type=submit]")
    browser.wait(lambda: browser.finds("#join-command"), what="the hand-over page")
    remember_page_secrets(browser)
    bad, report, _ = violations(browser)
    assert not bad, f"hand-over: {report}"


def test_pollers_page_shows_expiries_counts_and_links(fleet):
    core, browser, agent = fleet
    browser.sign_in(core.admin, path="/pollers")
    row = browser.find("tr[data-poller='edge-1']")
    cells = row.find_elements(By.CSS_SELECTOR, "td")
    assert cells[1].text.startswith("active") and "127.0.0.1:" in cells[3].text
    assert cells[5].find_element(By.CSS_SELECTOR, "time").get_attribute("datetime"), "SVID expiry shown"
    assert cells[6].find_element(By.CSS_SELECTOR, "time").get_attribute("datetime"), "CA expiry shown"
    assert "stale" not in row.get_attribute("class")
    assert "1 " in cells[7].text, cells[7].text
    cells[7].find_element(By.CSS_SELECTOR, "a").click()
    assert browser.path == "/?poller=edge-1"
    names = [r.find_element(By.CSS_SELECTOR, "td a").text for r in browser.finds("table.packages tbody tr")]
    assert names == ["probe-1"]


def test_the_console_works_from_the_keyboard_alone(fleet):
    core, browser, _ = fleet
    browser.sign_in(core.admin)
    body = browser.find("body")
    body.send_keys(Keys.TAB)
    assert browser.driver.switch_to.active_element.text == "Skip to content"
    seen = []
    for _ in range(40):
        active = browser.driver.switch_to.active_element
        if active.tag_name == "summary":
            break
        seen.append(active.tag_name)
        active.send_keys(Keys.TAB)
    else:
        raise AssertionError(f"Tab never reached the New package control: {seen}")
    outline = browser.driver.execute_script(
        "return getComputedStyle(document.activeElement).outlineStyle + ' ' + getComputedStyle(document.activeElement).outlineWidth")
    assert outline.startswith("solid") and not outline.endswith(" 0px"), f"no visible focus: {outline}"
    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    browser.wait(lambda: browser.driver.switch_to.active_element.get_attribute("id") == "c-name",
                 what="focus moving into the opened drawer")
    browser.driver.switch_to.active_element.send_keys("keyboard-poller")
    # With a live poller the type starts at agent; the arrow keys move along the radio group to poller.
    radio = browser.find("input[name=component_type][value=agent]")
    radio.send_keys(Keys.ARROW_LEFT)
    assert browser.find("input[name=component_type][value=poller]").is_selected()
    browser.find("#c-name").send_keys(Keys.ENTER)
    browser.wait(lambda: "Package created" in browser.find("h1").text, what="created by keyboard")
    assert any(p["name"] == "keyboard-poller" for p in core.api("GET", "/api/edge-packages").json()["items"])


def test_times_are_local_with_utc_on_hover(fleet):
    core, browser, agent = fleet
    browser.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
    browser.sign_in(core.admin, path=f"/packages/{agent['id']}")
    stamp = browser.find("table.fields time")
    utc = stamp.get_attribute("title")
    assert utc.endswith(" UTC") and stamp.get_attribute("datetime").endswith("Z")
    shown = stamp.text
    assert shown != utc and "UTC" not in shown
    local_hour = browser.driver.execute_script(
        "return new Date(arguments[0]).getHours()", stamp.get_attribute("datetime"))
    utc_hour = int(utc[11:13])
    assert (local_hour - utc_hour) % 24 in (5, 6), (local_hour, utc_hour)  # UTC+5:30


def test_audit_page_filters_pages_and_exports_csv(fleet):
    core, browser, agent = fleet
    core.api("POST", f"/api/edge-packages/{agent['id']}/revoke", {"reason": "=HYPERLINK(\"http://x\")"})
    browser.sign_in(core.admin, path="/audit?action=package.revoke")
    rows = browser.finds("table.audit tbody tr")
    assert len(rows) == 2 and all("package.revoke" in r.text for r in rows)
    assert browser.find("#a-action").get_attribute("value") == "package.revoke", "the filter stays in its field"
    browser.get("/audit?outcome=maybe")
    assert "Unknown outcome 'maybe'" in browser.text()

    cookie = {"Cookie": f"muster_session={browser.session_cookie()['value']}"}
    csv = core.request("GET", "/audit.csv?action=package.revoke", headers=cookie)
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in csv.headers["Content-Disposition"]
    table = list(csvlib.DictReader(io.StringIO(csv.body.decode())))
    assert [r["action"] for r in table] == ["package.revoke", "package.revoke"]
    assert {r["reason"] for r in table} == {"replaced", "'=HYPERLINK(\"http://x\")"}, "no formula reaches a spreadsheet"
    everything = core.request("GET", "/audit.csv", headers=cookie)
    assert len(list(csvlib.DictReader(io.StringIO(everything.body.decode())))) > len(table)

    # Paging: 100 a page, the next page starts where the first ended.
    for index in range(100):
        core.create(f"bulk-{index}", "poller")
    browser.get("/audit")
    first = [r.text for r in browser.finds("table.audit tbody tr")]
    assert len(first) == 100
    browser.click(browser.driver.find_element(By.PARTIAL_LINK_TEXT, "Older entries"))
    second = [r.text for r in browser.finds("table.audit tbody tr")]
    assert second and not set(first) & set(second)
    denied = core.request("GET", "/audit.csv", headers={"Cookie": "muster_session=nothing"})
    assert b"Sign in" in denied.body and b"package.revoke" not in denied.body  # no session: sign-in, no rows
