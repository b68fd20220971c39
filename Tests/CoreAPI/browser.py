"""A real Chromium (Debian's chromium + chromium-driver) driven by selenium, for the web console tests."""
import os
import pathlib
import shutil
import struct
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, SECRETS

SHOTS = pathlib.Path(tempfile.mkdtemp(prefix="muster-ui-shots-"))
# With MUSTER_UPDATE_SCREENSHOTS=1 the screenshots also land in Docs/ui/ (for Docs/ui.md).
PUBLISH = os.environ.get("MUSTER_UPDATE_SCREENSHOTS") == "1"


def chromium(download_dir, javascript=True):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--lang=en-US", "--disable-extensions", "--no-first-run"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir), "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
        **({} if javascript else {"profile.managed_default_content_settings.javascript": 2}),
    })
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    # Headless Chromium refuses downloads unless told where they go.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


class Browser:
    """One browser session against one Core, counting the clicks a user makes."""

    def __init__(self, core, download_dir, javascript=True):
        self.core = core
        self.downloads = pathlib.Path(download_dir)
        self.driver = chromium(self.downloads, javascript)
        self.clicks = 0

    def close(self):
        self.driver.quit()

    def get(self, path):
        self.driver.get(self.core.url + path)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css_or_element):
        """A user's click (counted). One that posts a form or follows a link waits for the answering page."""
        self.press(self.find(css_or_element) if isinstance(css_or_element, str) else css_or_element)
        self.clicks += 1

    def press(self, element):
        """Clicks without counting; a form submit or a link waits until the page it replaces is gone, so what is read
        next is the answer and not the old page (a browser may still show it for a moment)."""
        tag, kind = element.tag_name, (element.get_attribute("type") or "")
        if tag in ("button", "input") and kind == "submit":
            forms = element.find_elements(By.XPATH, "./ancestor::form")
            target = forms[0].get_attribute("action") or "" if forms else ""
        elif tag == "a" and element.get_attribute("download") is None:
            target = element.get_attribute("href") or ""
        else:
            target = ""
        # A download answers without replacing the page: nothing to wait for.
        navigates = bool(target) and "#" not in target and not target.endswith("/download")
        old = self.driver.find_element(By.TAG_NAME, "html") if navigates else None
        element.click()
        if old is not None:
            def replaced(_):
                try:
                    old.is_enabled()
                    return False
                except WebDriverException:
                    # Stale, or (Chromium, mid-navigation) "node does not belong to the document": gone either way.
                    return True
            try:
                WebDriverWait(self.driver, 10, poll_frequency=0.05).until(replaced)
            except TimeoutException:
                pass  # the browser kept the page (a download, or a form it refused itself): nothing to wait for

    def wait(self, predicate, timeout=20, what="the page"):
        # A page being replaced by the next one can leave an element stale mid-check: check again.
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]).until(
            lambda _: predicate(), message=what)

    @property
    def path(self):
        parsed = urllib.parse.urlparse(self.driver.current_url)
        return parsed.path + (("?" + parsed.query) if parsed.query else "")

    def sign_in(self, token, path="/"):
        self.get(path)
        self.wait(lambda: self.path.startswith("/login"), what="the sign-in page")
        self.find("#token").send_keys(token)
        self.press(self.find("form[action='/login'] button[type=submit]"))
        self.wait(lambda: not self.path.startswith("/login"), what="signed in")
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete"
                  and self.finds("main h1"), what="the page after sign-in")
        SECRETS.add(self.session_cookie()["value"])  # a session is a secret too: no log may hold it

    def session_cookie(self):
        return next(c for c in self.driver.get_cookies() if c["name"] == "muster_session")

    def csrf(self):
        return self.find("input[name=csrf]").get_attribute("value")

    def text(self):
        return self.find("body").text

    def shot(self, name):
        path = SHOTS / f"{name}.png"
        self.driver.execute_script("window.scrollTo(0, 0)")
        if PUBLISH:
            # Committed pictures carry no token, not even a throwaway test Core's.
            self.driver.execute_script(
                "document.querySelectorAll('#join-command').forEach(function (c) {"
                " c.textContent = c.textContent.replace(/mjt_[A-Za-z0-9_-]+/g, 'mjt_…(redacted in this picture)'); })")
        assert self.driver.save_screenshot(str(path))
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 800 and height >= 400, (width, height)
        if PUBLISH:
            target = ROOT / "Docs" / "ui"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        return path

    def wait_download(self, suffix=".tar.gz", timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            done = [p for p in self.downloads.iterdir() if p.name.endswith(suffix)]
            if done and not any(p.name.endswith(".crdownload") for p in self.downloads.iterdir()):
                return done[0]
            time.sleep(0.1)
        raise AssertionError(f"no {suffix} download within {timeout} s: {list(self.downloads.iterdir())}")


def remember_page_secrets(browser):
    """Records any join token shown on the page, so the log check covers it."""
    for code in browser.finds("#join-command"):
        for word in code.text.split():
            if word.strip("'").startswith("mjt_"):
                SECRETS.add(word.strip("'"))
