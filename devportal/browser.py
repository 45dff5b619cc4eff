"""Headless Chromium, driven by Selenium, running as an unprivileged user.

The tests run as root, but a browser must not: Open OnDemand users are
ordinary accounts, and Chromium as root is an unusual, untested setup. So
chromedriver (and with it every Chromium process) is started through
``runuser -u <run_as>``, with a fresh private HOME / profile owned by that user,
and Selenium talks to it over HTTP on 127.0.0.1 (webdriver.Remote).

Usage:
    with Browser(run_as="ood-alice", insecure_origins=[ood.origin]) as b:
        b.open(ood.url("/pun/sys/dashboard"))
        b.click(text="Launch")
        b.switch_to_newest_window()          # forms with target=_blank
        b.wait_for(text="Running")
        assert not b.console_errors()

The portal name (default ondemand.test) is mapped to 127.0.0.1 inside the
browser (--host-resolver-rules), so URLs carry the real portal host name and
cookies / CORS / Host headers behave as they do on a real portal. Origins in
``insecure_origins`` (e.g. "http://ondemand.test:8080") are treated as secure
contexts, so ``Secure`` cookies set by a plain-http test portal are stored
and sent back like over https.

Teardown (quit() / leaving the with block) always stops the session, kills
chromedriver's whole process group plus any leftover process tagged with this
browser's temp dir, and removes the temp dir. Failure screenshots are written
outside it (``artifacts_dir``) so they survive.

stdlib + selenium only; needs /usr/bin/chromium and /usr/bin/chromedriver
(Debian packages chromium, chromium-driver) and util-linux runuser.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .logs import tail
from .ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RUNUSER = "/usr/sbin/runuser"

# Flags for a quiet, deterministic headless browser in a container:
# --no-sandbox: the setuid/userns sandbox is not available here (and would
#   refuse root anyway); --disable-dev-shm-usage: /dev/shm may be small;
# the --disable-* networking flags keep Chromium from phoning home (no network).
CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
]

# Environment variable put into chromedriver's environment; every Chromium
# process inherits it, which lets teardown find stragglers that left the
# process group (value = this browser's temp dir, unique per instance).
TAG_VAR = "OOD_BROWSER_TAG"

# Elements click(text=...) considers clickable.
CLICKABLE_XPATH = (
    "//a | //button | //input[@type='submit' or @type='button' or @type='reset']"
    " | //*[@role='button' or @role='link' or @role='tab' or @role='menuitem']"
    " | //summary | //label"
)


def _xpath_literal(s):
    """Quote `s` for XPath 1.0 (which has no escape character)."""
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in s.split("'")) + ")"


def _norm(s):
    """Collapse whitespace, so text matching ignores line breaks and indentation."""
    return " ".join((s or "").split())


class Browser:
    """Headless Chromium as `run_as` (None: as the current user, for debugging).

    portal_host       name mapped to 127.0.0.1 inside the browser.
    run_as            unprivileged user that runs chromedriver and Chromium.
    downloads         directory for downloads (default: <tempdir>/downloads,
                      removed at teardown). Created (0700, owned by run_as) if
                      missing; an existing one must be writable by run_as.
    insecure_origins  origins ("http://host:port") treated as secure contexts;
                      more can be added with add_insecure_origin() before start.
    artifacts_dir     where failure screenshots go (default $OOD_BROWSER_ARTIFACTS
                      or /tmp/ood-browser-artifacts); kept after teardown.
    start_timeout     seconds to wait for chromedriver to answer.
    """

    def __init__(self, portal_host="ondemand.test", run_as="ood-alice", downloads=None,
                 insecure_origins=(), artifacts_dir=None, start_timeout=20):
        self.portal_host = portal_host
        self.run_as = run_as
        self.insecure_origins = list(insecure_origins)
        self.artifacts_dir = Path(artifacts_dir or os.environ.get(
            "OOD_BROWSER_ARTIFACTS", Path(tempfile.gettempdir()) / "ood-browser-artifacts"))
        self.start_timeout = start_timeout
        self._downloads_arg = downloads
        self.downloads = None
        self.driver = None
        self.port = None
        self.tmpdir = None
        self._proc = None
        self._uid = None
        self._known_handles = []
        self._pids_seen = set()
        self._shots = 0

    # ------------------------------------------------------------------ setup

    def add_insecure_origin(self, origin):
        """Treat `origin` (e.g. "http://ondemand.test:8080") as secure; call before start()."""
        if self.driver is not None:
            raise RuntimeError("add_insecure_origin() must be called before the browser starts")
        self.insecure_origins.append(origin)

    def _make_dir(self, path, uid, gid):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, uid, gid)
        return path

    def start(self):
        """Create the private temp dir, start chromedriver as run_as, open a session."""
        if self.driver is not None:
            return self
        try:
            self._start()
        except BaseException:
            self.quit()
            raise
        return self

    def _start(self):
        if self.run_as is None:
            pw = pwd.getpwuid(os.getuid())
        else:
            pw = pwd.getpwnam(self.run_as)
        self._uid = pw.pw_uid

        # mkdtemp gives mode 0700; hand it to the user so Chromium can write.
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"ood-browser-{pw.pw_name}-"))
        os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
        home = self._make_dir(self.tmpdir / "home", pw.pw_uid, pw.pw_gid)
        profile = self._make_dir(self.tmpdir / "profile", pw.pw_uid, pw.pw_gid)
        tmp = self._make_dir(self.tmpdir / "tmp", pw.pw_uid, pw.pw_gid)
        if self._downloads_arg is None:
            self.downloads = self._make_dir(self.tmpdir / "downloads", pw.pw_uid, pw.pw_gid)
        else:
            self.downloads = Path(self._downloads_arg)
            if not self.downloads.exists():
                self._make_dir(self.downloads, pw.pw_uid, pw.pw_gid)

        # A clean, explicit environment: nothing of root's session (XDG_RUNTIME_DIR,
        # DBUS_SESSION_BUS_ADDRESS, DISPLAY, proxies) leaks into the browser.
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            TAG_VAR: str(self.tmpdir),
        }
        self.port = free_port()
        driver_cmd = [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"]
        if self.run_as is not None:
            # runuser sets HOME/USER/LOGNAME itself; `env` puts ours back on top.
            cmd = [RUNUSER, "-u", self.run_as, "--", "/usr/bin/env"] + [
                f"{k}={v}" for k, v in env.items()] + driver_cmd
        else:
            cmd = driver_cmd
        log = open(self.tmpdir / "chromedriver.log", "wb")
        try:
            # Own session => own process group, which teardown kills as a whole.
            self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        finally:
            log.close()
        self._wait_for_chromedriver()

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in CHROME_ARGS:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--host-resolver-rules=MAP {self.portal_host} 127.0.0.1")
        for origin in self.insecure_origins:
            options.add_argument(f"--unsafely-treat-insecure-origin-as-secure={origin}")
        options.add_experimental_option("prefs", {
            "download.default_directory": str(self.downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
        })
        # Keep console messages so console_errors() can read them.
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{self.port}",
                                       options=options)
        self.driver.set_page_load_timeout(60)
        self._known_handles = list(self.driver.window_handles)

    def _wait_for_chromedriver(self):
        url = f"http://127.0.0.1:{self.port}/status"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromedriver exited with {self._proc.returncode}:\n"
                                   + tail(self.tmpdir / "chromedriver.log"))
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromedriver did not answer on {url} within "
                                   f"{self.start_timeout}s:\n" + tail(self.tmpdir / "chromedriver.log"))
            time.sleep(0.1)

    # --------------------------------------------------------------- teardown

    def _tagged_pids(self):
        """Pids of run_as's processes that belong to this browser (tag in env or
        temp dir in the command line), wherever they are in the process tree."""
        pids = []
        if self.tmpdir is None or self._uid is None:
            return pids
        tag = f"{TAG_VAR}={self.tmpdir}".encode()
        needle = str(self.tmpdir).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid != self._uid:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if needle in cmdline or tag in environ:
                pids.append(int(entry))
        return pids

    def _kill_all(self, grace=3):
        """Stop chromedriver, every Chromium process and runuser itself.

        Chromium forks many helpers; most stay in chromedriver's process group
        (== runuser's pid, thanks to start_new_session), but e.g. the crashpad
        handlers daemonize into their own group, so tagged processes of run_as
        are swept too. Signals go first to everything except runuser, so that
        runuser can reap chromedriver and exit by itself (no orphaned zombie).
        """
        proc = self._proc
        seen = set(self._pids_seen) | self._our_pids(include_leader=True)

        def living(include_leader):
            # zombies are dead already; their parent reaps them
            return {p for p in self._our_pids(include_leader) if _state(p) not in (None, "Z")}

        # SIGTERM spares runuser; SIGKILL (only if something survived) spares nobody.
        for sig, include_leader, wait in ((signal.SIGTERM, False, grace),
                                          (signal.SIGKILL, True, 5)):
            for pid in living(include_leader):
                try:
                    os.kill(pid, sig)
                    seen.add(pid)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while living(include_leader=False) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc is not None:
                # runuser exits by itself once it has reaped chromedriver.
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
            if not living(include_leader=True):
                break
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._proc = None
        # Helpers whose parent died first (crashpad handlers, zygote children)
        # are reparented to pid 1, which here reaps only every second or so;
        # wait for that, so `ps` right after teardown shows nothing of ours.
        deadline = time.monotonic() + 5
        while any(_state(p) is not None for p in seen) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _our_pids(self, include_leader):
        """Tagged processes plus chromedriver's process group (minus runuser,
        the group leader, unless include_leader)."""
        pids = set(self._tagged_pids())
        if self._proc is not None:
            pids.update(p for p, _ in _group_members(self._proc.pid))
            if not include_leader:
                pids.discard(self._proc.pid)
        return pids

    def quit(self):
        """Stop everything; safe to call more than once and after a failed start."""
        driver, self.driver = self.driver, None
        # Snapshot our processes while they still carry their tag: once they
        # exit, orphans linger as zombies of pid 1 for a moment (see _kill_all).
        self._pids_seen = self._our_pids(include_leader=True)
        if driver is not None:
            try:
                driver.quit()  # chromedriver closes Chromium gracefully
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        self._kill_all()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.quit()

    # ---------------------------------------------------------------- actions

    def open(self, url):
        """Load `url` in the current window (waits for the load event)."""
        self.driver.get(url)

    def page_text(self):
        """The visible text of the page body ("" if there is no body yet)."""
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def _find_visible(self, css=None, text=None):
        """First displayed element matching css and/or containing visible text."""
        want = _norm(text) if text is not None else None
        if css is not None:
            for el in self.driver.find_elements(By.CSS_SELECTOR, css):
                if el.is_displayed() and (want is None or want in _norm(el.text)):
                    return el
            return None
        # Cheap pre-check on the whole body, then the innermost element with the
        # text (XPath string value includes hidden text, so re-check .text).
        if want not in _norm(self.page_text()):
            return None
        xp = f"//body//*[contains(normalize-space(.), {_xpath_literal(want)})]"
        for el in reversed(self.driver.find_elements(By.XPATH, xp)):
            if el.is_displayed() and want in _norm(el.text):
                return el
        return self.driver.find_element(By.TAG_NAME, "body")  # text spans elements

    def wait_for(self, css=None, text=None, timeout=30):
        """Wait until an element matching `css` (and containing `text`, if both are
        given) or any element with visible `text` is displayed; return it.

        On timeout: AssertionError with URL, title, visible text and a screenshot path.
        """
        if css is None and text is None:
            raise ValueError("wait_for() needs css or text")
        try:
            return WebDriverWait(
                self.driver, timeout, poll_frequency=0.2,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(lambda d: self._find_visible(css, text))
        except TimeoutException:
            what = " and ".join(f"{k}={v!r}" for k, v in (("css", css), ("text", text)) if v is not None)
            raise AssertionError(self._failure_report(f"wait_for({what}) timed out after {timeout}s")) from None

    def click(self, css=None, text=None, timeout=30):
        """Click the first displayed element matching `css`, or the first displayed,
        enabled clickable element (link, button, submit input, role=button, ...)
        whose visible text (or value, for inputs) contains `text`. Waits up to
        `timeout` for it to appear."""
        if css is None and text is None:
            raise ValueError("click() needs css or text")

        def find(d):
            if css is not None:
                return self._find_visible(css, text)
            want = _norm(text)
            for el in d.find_elements(By.XPATH, CLICKABLE_XPATH):
                label = _norm(el.text) or _norm(el.get_attribute("value"))
                if want in label and el.is_displayed() and el.is_enabled():
                    return el
            return None

        try:
            el = WebDriverWait(
                self.driver, timeout, poll_frequency=0.2,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(find)
        except TimeoutException:
            what = " and ".join(f"{k}={v!r}" for k, v in (("css", css), ("text", text)) if v is not None)
            raise AssertionError(self._failure_report(f"click({what}): nothing clickable after {timeout}s")) from None
        el.click()
        return el

    def switch_to_newest_window(self, timeout=10):
        """Switch to a window opened since the last open/switch (e.g. by a form
        with target=_blank); waits up to `timeout` for it to appear."""
        try:
            new = WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
                lambda d: [h for h in d.window_handles if h not in self._known_handles])
        except TimeoutException:
            raise AssertionError(self._failure_report(f"no new window appeared within {timeout}s")) from None
        self._known_handles.extend(new)
        self.driver.switch_to.window(new[-1])
        return new[-1]

    def fill(self, element_id, value):
        """Put `value` in a form field. Not send_keys: Selenium takes text that names an existing
        file for a file to upload, and store paths in these tests do exist."""
        field = self.driver.find_element(By.ID, element_id)
        self.driver.execute_script("arguments[0].value = arguments[1]", field, value)

    def screenshot(self, path):
        """Save a PNG of the current viewport to `path` (written by this process)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(self.driver.get_screenshot_as_png())
        return Path(path)

    def cookies(self):
        """Cookies visible to the current page's URL (HttpOnly ones included), as
        Selenium dicts: name, value, domain, path, secure, httpOnly, sameSite..."""
        return self.driver.get_cookies()

    def console_errors(self):
        """Browser console entries of level SEVERE since the last call (the log
        is drained by reading it)."""
        return [e for e in self.driver.execute("getLog", {"type": "browser"})["value"]
                if e.get("level") == "SEVERE"]

    # ------------------------------------------------------------ diagnostics

    def _failure_report(self, headline):
        lines = [headline]
        try:
            lines.append(f"url:   {self.driver.current_url}")
            lines.append(f"title: {self.driver.title!r}")
        except WebDriverException as e:
            lines.append(f"(page state unavailable: {e.msg})")
        self._shots += 1
        path = self.artifacts_dir / f"browser-{os.getpid()}-{int(time.time())}-{self._shots}.png"
        try:
            self.screenshot(path)
            lines.append(f"screenshot: {path}")
        except (OSError, WebDriverException) as e:
            lines.append(f"screenshot failed: {e}")
        lines.append("visible text (first 2000 chars):")
        lines.append(self.page_text()[:2000])
        try:  # what the page's scripts reported (and the log is drained: the test is failing anyway)
            lines += ["console errors:"] + [e.get("message", "")[:500] for e in self.console_errors()[-10:]]
        except WebDriverException as e:
            lines.append(f"(console unavailable: {e.msg})")
        return "\n".join(lines)


def _stat(pid):
    """(state, ppid, pgrp) of `pid` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after "(comm)" (which may contain spaces): state ppid pgrp ...
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def _state(pid):
    """Process state letter (R, S, Z, ...) or None if `pid` is gone."""
    st = _stat(pid)
    return st[0] if st else None


def _group_members(pgid):
    """[(pid, state)] of the processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st and st[2] == pgid:
                members.append((int(entry), st[0]))
    return members
