"""The web console in a real Chromium: sign-in, create and hand over packages, watch them change live, revoke, and
the console's defences (scopes, CSRF, cookie flags, inert markup, expired sessions)."""
import http.client
import os
import re
import subprocess
import time
import urllib.parse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser import Browser, remember_page_secrets
from conftest import BIN_DIR, SECRETS, Core, open_archive
from relay import Poller, wait_cached, wait_for

CONTRACT_MEMBERS = {"manifest.json", "join-token", "bundle.pem", "bundle.spiffe.json", "README.txt"}


@pytest.fixture
def console_core():
    core = Core(extra=["--create-rate-limit", "1000"])
    yield core
    assert core.stop() == 0


@pytest.fixture
def browser(console_core, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    instance = Browser(console_core, downloads)
    yield instance
    instance.close()


def packages_via_api(core):
    return core.api("GET", "/api/edge-packages").json()["items"]


def test_create_and_download_a_poller_package_in_at_most_five_clicks(console_core, browser):
    core = console_core
    browser.sign_in(core.admin)
    assert browser.path == "/"
    browser.shot("login-landing")
    browser.clicks = 0
    browser.click("#create summary")                          # 1: open the drawer
    browser.wait(lambda: browser.find("#c-name").is_displayed(), what="the create drawer")
    browser.find("#c-name").send_keys("edge-site-x")
    assert browser.find("input[name=component_type][value=poller]").is_selected(), "no poller yet: poller is the default"
    browser.shot("packages-create-drawer")
    browser.click("#create button[type=submit]")              # 2: create
    browser.wait(lambda: "Package created" in browser.find("h1").text, what="the hand-over page")
    assert not browser.finds("#join-command"), "a poller package has no join command"
    browser.shot("package-created-poller")
    browser.click("#download")                                # 3: download
    archive = browser.wait_download()
    assert browser.clicks <= 5, browser.clicks

    assert archive.name == "muster-poller-edge-site-x.tar.gz"
    files = open_archive(archive.read_bytes())
    assert CONTRACT_MEMBERS <= set(files) and "muster-poller.env" in files
    assert files["join-token"][0] & 0o077 == 0
    listed = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    assert CONTRACT_MEMBERS <= set(listed)

    [package] = packages_via_api(core)
    assert package["name"] == "edge-site-x" and package["status"] == "delivered"
    browser.get("/")
    row = browser.find(f"tr[data-id='{package['id']}']")
    assert row.find_element(By.CSS_SELECTOR, "[data-status]").text == "delivered"
    browser.get(f"/packages/{package['id']}")
    assert not browser.finds("#download"), "the download button is gone once the package was downloaded"
    # A second download (the hand-over page's button pressed again) is refused with a clear message on the page,
    # and the package stays as it was.
    again = core.request("POST", f"/packages/{package['id']}/download",
                         raw=urllib.parse.urlencode({"csrf": browser.csrf()}).encode(),
                         headers={"Cookie": f"muster_session={browser.session_cookie()['value']}",
                                  "Content-Type": "application/x-www-form-urlencoded"})
    assert again.status == 410 and b"was already downloaded" in again.body
    assert again.headers["Content-Type"].startswith("text/html")
    assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "delivered"


def test_agent_join_command_is_shown_once_works_and_the_row_turns_activated_live(console_core, browser, tmp_path):
    core = console_core
    poller = Poller(core, tmp_path / "poller")
    try:
        browser.sign_in(core.admin)
        browser.click("#create summary")
        browser.find("#c-name").send_keys("probe-7")
        assert browser.find("input[name=component_type][value=agent]").is_selected(), "a live poller: agent is the default"
        options = [o.text for o in Select(browser.find("#c-poller")).options]
        assert any(o.startswith("edge-1 · site default · last contact") for o in options), options
        Select(browser.find("#c-poller")).select_by_value("edge-1")
        browser.find("#c-notes").send_keys("rack 4, <b>left</b>")
        browser.click("#create button[type=submit]")
        browser.wait(lambda: browser.finds("#join-command"), what="the join command")
        remember_page_secrets(browser)
        command = browser.find("#join-command").text
        assert "Shown once" in browser.text()
        assert command.startswith("printf '%s\\n' 'mjt_") and "| muster-agent join --poller '127.0.0.1:" in command
        assert "--poller-id 'edge-1' --token-file - --ca-pin 'sha256:" in command
        token = re.search(r"'(mjt_[^']+)'", command).group(1)
        browser.shot("package-created-agent")

        [package] = [p for p in packages_via_api(core) if p["name"] == "probe-7"]
        browser.click(browser.driver.find_element(By.LINK_TEXT, "Back to packages"))
        row_status = f"tr[data-id='{package['id']}'] [data-status]"
        browser.wait(lambda: browser.find("#live").text.startswith("Live"), what="the live stream")
        assert token not in browser.driver.page_source, "the token is shown once: not on the packages page"
        wait_cached(core, package["id"])
        browser.wait(lambda: browser.find(row_status).text == "delivered", what="the row turning delivered live")

        activated_before = int(browser.find("[data-count=activated]").text)  # the poller's own package
        # The command exactly as shown, pasted into a shell on the edge machine.
        env = {**os.environ, "PATH": f"{BIN_DIR}:{os.environ['PATH']}"}
        joined = subprocess.run(["sh", "-c", command + f" --dir {tmp_path / 'agent'}"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert joined.returncode == 0, joined.stderr
        assert "spiffe://blackbox.test/muster/poller/edge-1/agent/probe-7" in joined.stdout
        assert (tmp_path / "agent" / "identity").exists()
        browser.wait(lambda: browser.find(row_status).text == "activated", timeout=30,
                     what="the row turning activated without a reload")
        assert int(browser.find("[data-count=activated]").text) == activated_before + 1, "the count moves live too"
        browser.shot("packages-live")

        browser.get(f"/packages/{package['id']}")
        assert token not in browser.driver.page_source
        timeline = browser.find("ol.timeline").text
        assert "Created" in timeline and "Pulled by its poller" in timeline and "Activation" in timeline
        assert "from 127.0.0.1" in browser.find("table.fields").text
        assert "join command shown: console" in timeline
    finally:
        poller.stop()


def test_revoke_with_a_reason_shows_in_the_timeline_and_live_in_the_events_console(console_core, browser):
    core = console_core
    package = core.create("edge-2", "poller").json()
    browser.sign_in(core.admin, path="/events")
    assert browser.path == "/events"
    browser.wait(lambda: browser.find("#ev-state").text == "Live", what="the events stream")
    events_window = browser.driver.current_window_handle
    browser.driver.switch_to.new_window("tab")
    browser.get(f"/packages/{package['id']}")
    browser.shot("package-detail")

    # Without the confirmation nothing happens, and the reason typed is kept.
    browser.find("#r-reason").send_keys("decommissioned <script>alert(1)</script>")
    browser.click("form[action$='/revoke'] button[type=submit]")
    # The click posts the form; the answer is a new page, so wait for it rather than read the old one.
    browser.wait(lambda: "Tick the box to confirm" in browser.find("#e-confirm").text, what="the confirmation message")
    assert browser.find("#r-reason").get_attribute("value") == "decommissioned <script>alert(1)</script>"
    assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "created"

    browser.click("form[action$='/revoke'] input[name=confirm]")
    browser.click("form[action$='/revoke'] button[type=submit]")
    browser.wait(lambda: "Revoked." in browser.text(), what="the revoked notice")
    assert browser.find("[data-status]").text == "revoked"
    timeline = browser.find("ol.timeline").text
    assert "Revoked" in timeline and "decommissioned <script>alert(1)</script>" in timeline
    assert browser.driver.execute_script("return document.querySelectorAll('ol.timeline script').length") == 0
    assert not browser.finds("form[action$='/revoke']"), "a revoked package offers no revoke"
    record = core.api("GET", f"/api/edge-packages/{package['id']}").json()
    assert record["status"] == "revoked" and record["revoke_reason"].startswith("decommissioned")

    browser.driver.switch_to.window(events_window)
    browser.wait(lambda: browser.finds("#events tr[data-type='package.revoked']"), what="the revoke event, live")
    assert "edge-2" in browser.find("#events tr[data-type='package.revoked']").text
    Select(browser.find("#ev-type")).select_by_visible_text("package.created")
    assert not browser.find("#events tr[data-type='package.revoked']").is_displayed()
    Select(browser.find("#ev-type")).select_by_index(0)
    browser.shot("events")


def test_events_console_pauses_and_resumes_without_gaps_after_a_reconnect(console_core, browser):
    core = console_core
    browser.sign_in(core.admin, path="/events")
    browser.wait(lambda: browser.find("#ev-state").text == "Live", what="the events stream")
    browser.click("#ev-pause")
    core.create("paused-1", "poller")
    browser.wait(lambda: browser.find("#ev-state").text == "Paused (1 waiting)", what="an event held while paused")
    assert not browser.finds("#events tr[data-type='package.created']")
    browser.click("#ev-pause")
    browser.wait(lambda: len(browser.finds("#events tr[data-type='package.created']")) == 1, what="the held event")

    # Core restarts: the browser reconnects by itself with Last-Event-ID, and what happened meanwhile shows up once.
    core.stop()
    browser.wait(lambda: "reconnecting" in browser.find("#ev-state").text, what="the lost connection")
    core.start()
    core.create("while-away-1", "poller")
    core.create("while-away-2", "poller")
    browser.wait(lambda: len(browser.finds("#events tr[data-type='package.created']")) == 3, timeout=30,
                 what="the events created while the stream was down")
    ids = [int(r.find_element(By.CSS_SELECTOR, "td").text) for r in browser.finds("#events tr")]
    assert len(ids) == len(set(ids)), "no event shown twice"
    assert "while-away-1" in browser.find("#events").text and "while-away-2" in browser.find("#events").text


def test_a_read_only_session_sees_no_write_controls_and_a_forged_post_is_refused(console_core, browser):
    core = console_core
    package = core.create("edge-3", "poller").json()
    reader = core.mint("config:read", name="viewer")
    browser.sign_in(reader)
    assert not browser.finds("#create") and "New package" not in browser.text()
    nav = browser.find("nav[aria-label=Main]").text
    assert "Packages" in nav and "Audit" not in nav
    browser.get(f"/packages/{package['id']}")
    assert not browser.finds("form[action$='/revoke']") and not browser.finds("#download")
    browser.get("/audit")
    assert "This needs the scope audit:read" in browser.text()

    cookie = browser.session_cookie()["value"]
    csrf = browser.csrf()  # the sign-out form's token: a valid one for this session
    headers = {"Cookie": f"muster_session={cookie}", "Content-Type": "application/x-www-form-urlencoded"}
    forged = urllib.parse.urlencode({"csrf": csrf, "name": "forged", "component_type": "poller"}).encode()
    answer = core.request("POST", "/packages", raw=forged, headers=headers)
    assert answer.status == 403 and b"config:write" in answer.body
    revoke = urllib.parse.urlencode({"csrf": csrf, "confirm": "yes"}).encode()
    assert core.request("POST", f"/packages/{package['id']}/revoke", raw=revoke, headers=headers).status == 403
    assert [p["name"] for p in packages_via_api(core)] == ["edge-3"]
    assert packages_via_api(core)[0]["status"] == "created"


def test_posts_without_or_with_a_wrong_csrf_token_are_refused_and_change_nothing(console_core, browser):
    core = console_core
    browser.sign_in(core.admin)
    cookie = browser.session_cookie()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    headers = {"Cookie": f"muster_session={cookie['value']}", "Content-Type": "application/x-www-form-urlencoded"}
    real = browser.csrf()
    # One character changed; the replacement must differ from the one it replaces.
    tampered = real[:-1] + ("B" if real.endswith("A") else "A")
    for fields in [{}, {"csrf": "wrong"}, {"csrf": tampered}]:
        body = urllib.parse.urlencode({**fields, "name": "sneaky", "component_type": "poller"}).encode()
        answer = core.request("POST", "/packages", raw=body, headers=headers)
        assert answer.status == 403 and b"security token is missing or wrong" in answer.body
        logout = core.request("POST", "/logout", raw=urllib.parse.urlencode(fields).encode(), headers=headers)
        assert logout.status == 403
    assert packages_via_api(core) == []
    browser.get("/")
    assert browser.path == "/", "the session survived the forged sign-outs"

    # Every console answer carries the security headers; pages are never cached.
    page = core.request("GET", "/", headers={"Cookie": f"muster_session={cookie['value']}"})
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.body.decode(), "no inline script"


def test_session_cookie_flags_and_secure_behind_tls(console_core):
    core = console_core
    for forwarded, secure in [(None, False), ("https", True)]:
        extra = {"X-Forwarded-Proto": forwarded} if forwarded else {}
        connection = http.client.HTTPConnection("127.0.0.1", core.http_port, timeout=10)
        connection.request("GET", "/login", headers=extra)
        first = connection.getresponse()
        login_value = first.getheader("Set-Cookie").split(";")[0].split("=", 1)[1]
        first.read()
        body = urllib.parse.urlencode({"token": core.admin, "csrf": login_value, "next": "/pollers"})
        connection.request("POST", "/login", body=body, headers={
            **extra, "Cookie": f"muster_login={login_value}", "Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 303 and answer.getheader("Location") == "/pollers"
        session = next(c for c in answer.headers.get_all("Set-Cookie") if c.startswith("muster_session="))
        SECRETS.add(session.split(";")[0].split("=", 1)[1])
        flags = [part.strip() for part in session.split(";")[1:]]
        assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags
        assert ("Secure" in flags) == secure, session
        # A sign-in form from another page (no matching login cookie) is refused.
        connection.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 403
        connection.close()


def test_markup_in_notes_name_and_site_is_shown_as_text(console_core, browser):
    core = console_core
    browser.sign_in(core.admin)
    browser.click("#create summary")
    browser.find("#c-name").send_keys("edge-xss")
    browser.find("#c-site").clear()
    browser.find("#c-site").send_keys('lab"><img src=x onerror="window.__pwned=1">')
    browser.find("#c-notes").send_keys("<script>window.__pwned=2</script><img src=x onerror=\"window.__pwned=3\">")
    browser.click("#create button[type=submit]")
    browser.wait(lambda: "Package created" in browser.find("h1").text, what="the hand-over page")
    package = packages_via_api(core)[0]
    browser.get(f"/packages/{package['id']}")
    assert browser.driver.execute_script("return window.__pwned === undefined")
    assert browser.driver.execute_script("return document.querySelectorAll('main img, main script').length") == 0
    fields = browser.find("table.fields").text
    assert "<script>window.__pwned=2</script>" in fields and 'lab"><img src=x' in fields
    browser.get("/")
    assert browser.driver.execute_script("return window.__pwned === undefined")
    assert 'lab"><img src=x onerror="window.__pwned=1">' in browser.find("table.packages").text


def test_invalid_fields_come_back_next_to_the_field_with_values_kept_and_nothing_created(console_core, browser):
    core = console_core
    browser.sign_in(core.admin)
    browser.click("#create summary")
    browser.find("#c-name").send_keys("Bad Name!")
    browser.click("input[name=component_type][value=agent]")
    browser.find("#c-site").clear()
    browser.find("#c-site").send_keys("lab-2")
    browser.find("#c-selectors").send_keys("unix-uid-1000")
    browser.find("#c-notes").send_keys("keep these notes")
    browser.click("#create button[type=submit]")
    browser.wait(lambda: browser.finds("#e-name"), what="the field errors")
    assert "Use 1–63 of a–z" in browser.find("#e-name").text
    assert "Choose the poller" in browser.find("#e-poller_id").text
    assert "not type:value" in browser.find("#e-selectors").text
    assert browser.find("#c-name").get_attribute("aria-invalid") == "true"
    assert "e-name" in browser.find("#c-name").get_attribute("aria-describedby")
    assert browser.find("#c-name").get_attribute("value") == "Bad Name!"
    assert browser.find("#c-site").get_attribute("value") == "lab-2"
    assert browser.find("#c-notes").get_attribute("value") == "keep these notes"
    assert browser.find("input[name=component_type][value=agent]").is_selected()
    assert browser.find("details#create").get_attribute("open") is not None
    browser.shot("packages-create-errors")
    assert packages_via_api(core) == []

    # A name already live comes back on the name field.
    core.create("edge-dup", "poller")
    browser.find("#c-name").clear()
    browser.find("#c-name").send_keys("edge-dup")
    browser.click("input[name=component_type][value=poller]")
    browser.find("#c-selectors").clear()
    browser.click("#create button[type=submit]")
    browser.wait(lambda: browser.finds("#e-name"), what="the conflict on the name")
    assert "already holds" in browser.find("#e-name").text
    assert len(packages_via_api(core)) == 1


def test_an_expired_session_goes_to_sign_in_and_back_to_where_the_operator_was(tmp_path):
    core = Core(extra=["--console-idle-timeout", "5"])
    browser = Browser(core, tmp_path)
    try:
        package = core.create("edge-4", "poller").json()
        browser.sign_in(core.admin)
        time.sleep(6)
        browser.get(f"/packages/{package['id']}?from=test")
        assert browser.path == "/login?next=" + urllib.parse.quote(f"/packages/{package['id']}?from=test", safe="/")
        assert "Sign in" in browser.find("h1").text
        browser.find("#token").send_keys(core.admin)
        browser.press(browser.find("form[action='/login'] button[type=submit]"))
        browser.wait(lambda: browser.path.startswith("/packages/"), what="back on the package")
        assert browser.path == f"/packages/{package['id']}?from=test"
        assert "Package edge-4" in browser.find("h1").text

        # Signing out ends the session on the server: the old cookie no longer opens anything.
        old = browser.session_cookie()["value"]
        browser.click("form[action='/logout'] button")
        browser.wait(lambda: browser.path.startswith("/login"), what="signed out")
        stale = core.request("GET", "/pollers", headers={"Cookie": f"muster_session={old}"})
        assert stale.status == 200 and b"Sign in" in stale.body  # urllib followed the redirect to /login

        # A wrong token is told apart on the form, and a next that points elsewhere is not followed.
        browser.get("/login?next=//evil.example/")
        browser.find("#token").send_keys("mot_not-a-token")
        browser.press(browser.find("form[action='/login'] button[type=submit]"))
        assert "not recognized" in browser.find("#token-error").text
        browser.find("#token").send_keys(core.admin)
        browser.press(browser.find("form[action='/login'] button[type=submit]"))
        browser.wait(lambda: not browser.path.startswith("/login"), what="signed in")
        assert browser.driver.current_url == core.url + "/"
    finally:
        browser.close()
        core.stop()


def test_revoking_the_token_ends_its_console_sessions_and_api_calls(console_core, browser):
    core = console_core
    token = core.mint("config:read,config:write", name="night-shift")
    browser.sign_in(token, path="/pollers")
    assert browser.path == "/pollers"
    assert core.api("GET", "/api/pollers", token=token).status == 200

    revoke = [str(BIN_DIR / "muster-core"), "token", "revoke", "--data-dir", str(core.data_dir), "--name", "night-shift"]
    done = subprocess.run(revoke, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "revoked 1 token named night-shift", done.stderr
    browser.get("/pollers")
    assert browser.path == "/login?next=/pollers", "the session ended with its token"
    assert core.api("GET", "/api/pollers", token=token).status == 401
    again = subprocess.run(revoke, capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and again.stderr.strip() == "muster-core: no live token is named 'night-shift'"
    rows = core.api("GET", "/api/audit?action=token.revoke").json()["items"]
    assert [(r["actor"], r["target_id"]) for r in rows] == [("cli:muster-core", "night-shift")]
    assert core.api("GET", "/api/pollers").status == 200, "other tokens are untouched"


def test_every_action_works_with_javascript_off(console_core, tmp_path):
    core = console_core
    browser = Browser(core, tmp_path, javascript=False)
    try:
        browser.sign_in(core.admin)
        browser.click("#create summary")
        browser.find("#c-name").send_keys("edge-nojs")
        browser.click("#create button[type=submit]")
        browser.wait(lambda: "Package created" in browser.find("h1").text, what="the hand-over page")
        browser.click("#download")
        assert browser.wait_download().name == "muster-poller-edge-nojs.tar.gz"
        [package] = packages_via_api(core)
        browser.get(f"/packages/{package['id']}")
        assert browser.find("time").text.endswith(" UTC"), "no script ran: times stay in UTC"
        browser.find("#r-reason").send_keys("no script needed")
        browser.click("form[action$='/revoke'] input[name=confirm]")
        browser.click("form[action$='/revoke'] button[type=submit]")
        browser.wait(lambda: "Revoked." in browser.text(), what="the revoked notice")
        assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "revoked"
        browser.get("/events")
        assert "package.revoked" in browser.find("#events").text, "the events page lists what happened"
        browser.click("form[action='/logout'] button")
        browser.wait(lambda: browser.path.startswith("/login"), what="signed out")
    finally:
        browser.close()


def test_approvals_page_shows_claimed_beside_observed_and_approves_after_the_fingerprint_check(
        console_core, browser, tmp_path, onboarding):
    core = console_core
    pb, _ = onboarding
    from relay import edge_stub, new_key_and_csr
    poller = Poller(core, tmp_path / "poller")
    channel, stub = edge_stub(onboarding, poller)
    try:
        _, csr = new_key_and_csr()
        claimed = pb.ClaimedFacts(machine_id="0123456789abcdef0123456789abcdef", hostname="Shop-Floor-7.example",
                                  fqdn="shop-floor-7.example", addresses=["10.9.8.7"], os="debian 12",
                                  kernel="6.1.0", arch="x86_64")
        answer = stub.Enroll(pb.EnrollRequest(component_type="agent", claimed=claimed, csr=csr), timeout=10)
        wait_for(lambda: core.api("GET", f"/api/enrollments/{answer.request_id}").status == 200,
                 what="the request relayed to Core")
        short = core.api("GET", f"/api/enrollments/{answer.request_id}").json()["key_fingerprint_short"]
        browser.sign_in(core.admin)
        assert browser.find("nav[aria-label=Main] .badge").text == "1"
        browser.click("nav[aria-label=Main] a[href='/enrollments']")
        card = browser.wait(lambda: browser.find(f"[data-enrollment='{answer.request_id}']"), what="the Approvals page")
        assert answer.key_fingerprint in card.text and short in card.text
        row = [r for r in card.find_elements(By.CSS_SELECTOR, "tr") if r.text.startswith("Addresses")][0]
        assert "10.9.8.7" in row.text and "127.0.0.1" in row.text
        assert "address_mismatch" in card.text
        name = card.find_element(By.CSS_SELECTOR, "input[name=name]")
        assert name.get_attribute("value") == "shop-floor-7"
        # Without the fingerprint box ticked: a message next to it, nothing decided.
        browser.click(card.find_element(By.CSS_SELECTOR, "form.approve button[type=submit]"))
        # The answer is a new page: wait for the message there rather than read the card being replaced.
        card = browser.wait(lambda: next((c for c in browser.finds(f"[data-enrollment='{answer.request_id}']")
                                          if "Tick the box once the installer" in c.text), None),
                            what="the fingerprint message")
        assert card.find_element(By.CSS_SELECTOR, "input[name=compared]").get_attribute("aria-invalid") == "true"
        assert core.api("GET", f"/api/enrollments/{answer.request_id}").json()["status"] == "pending"
        browser.click(card.find_element(By.CSS_SELECTOR, "input[name=compared]"))
        browser.click(card.find_element(By.CSS_SELECTOR, "form.approve button[type=submit]"))
        browser.wait(lambda: "Approved." in browser.text(), what="the approval notice")
        done = core.api("GET", f"/api/enrollments/{answer.request_id}").json()
        assert done["status"] == "approved" and done["spiffe_id"].endswith("/agent/shop-floor-7")
        assert not browser.finds("nav[aria-label=Main] .badge")
        browser.get("/events")
        rows = [r.text for r in browser.finds("#events tr")]
        assert any("enrollment.approved" in r and "shop-floor-7" in r for r in rows), rows
        assert any("enrollment.requested" in r and "Shop-Floor-7.example" in r for r in rows), rows
    finally:
        channel.close()
        poller.stop()
