"""Self-test of devportal/browser.py against a tiny stdlib web site.

Checks what the portal tests rely on:
* the portal name (ondemand.test) resolves to 127.0.0.1 inside Chromium;
* a form with target=_blank opens a new window we can switch to;
* a `Secure; HttpOnly; SameSite=Strict` cookie set over plain http is kept
  and sent back (thanks to --unsafely-treat-insecure-origin-as-secure);
* Chromium runs as the unprivileged test user, not root;
* teardown leaves no chromedriver/Chromium process behind.
"""

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devportal.browser import Browser

pytestmark = [pytest.mark.launch, pytest.mark.browser, pytest.mark.usefixtures("users")]  # Chromium as a test user

PORTAL = "ondemand.test"
USER = "ood-alice"

FORM_PAGE = b"""<!doctype html>
<html><head><title>Sign in</title></head><body>
<form method="post" action="/login" target="_blank">
  <input type="hidden" name="user" value="alice">
  <button type="submit">Sign in</button>
</form>
</body></html>"""


class Handler(BaseHTTPRequestHandler):
    requests = []  # (method, path, Host, Cookie) of every request, for asserts

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self):
        Handler.requests.append((self.command, self.path, self.headers.get("Host"),
                                 self.headers.get("Cookie")))

    def do_GET(self):
        self._record()
        if self.path == "/":
            self._send(200, FORM_PAGE)
        elif self.path == "/favicon.ico":
            self._send(204)  # a 404 here would show up in console_errors()
        elif self.path == "/home":
            cookies = [c.strip() for c in (self.headers.get("Cookie") or "").split(";")]
            if "k=v" in cookies:
                self._send(200, b"<title>Home</title><h1>Welcome</h1>")
            else:
                self._send(403, b"<title>Denied</title><h1>No cookie</h1>")
        else:
            self._send(404, b"not found")

    def do_POST(self):
        self._record()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/login":
            self._send(303, headers=[
                ("Location", "/home"),
                ("Set-Cookie", "k=v; Path=/; HttpOnly; SameSite=Strict; Secure"),
            ])
        else:
            self._send(404, b"not found")


@pytest.fixture
def site():
    Handler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def browser_processes():
    """`ps` lines (user, pid, command) of chromedriver/chromium processes, zombies included."""
    out = subprocess.run(["ps", "-eo", "user:32,pid,stat,comm,args"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()[1:]
            if any(name in line.split(None, 3)[3] for name in ("chromium", "chromedriver", "chrome_crashpad"))]


def test_login_form_new_window_secure_cookie_as_user(site):
    assert not browser_processes(), "browser processes left over from before the test"
    origin = f"http://{PORTAL}:{site}"

    with Browser(portal_host=PORTAL, run_as=USER, insecure_origins=[origin]) as b:
        b.open(f"{origin}/")
        b.wait_for(css="form button")
        b.click(text="Sign in")
        b.switch_to_newest_window()
        b.wait_for(text="Welcome", timeout=15)

        assert b.driver.current_url == f"{origin}/home"
        cookie = {c["name"]: c for c in b.cookies()}["k"]
        assert cookie["value"] == "v"
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert not b.console_errors()

        # Every request carried the portal name, i.e. went through the resolver rule.
        assert {host for _, _, host, _ in Handler.requests} == {f"{PORTAL}:{site}"}
        assert ("GET", "/home", f"{PORTAL}:{site}", "k=v") in Handler.requests

        procs = browser_processes()
        users = {line.split()[0] for line in procs}
        assert any("chromium" in line for line in procs), procs
        assert users == {USER}, "\n".join(procs)

    assert not browser_processes(), "left behind:\n" + "\n".join(browser_processes())
