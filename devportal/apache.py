"""A private Apache that proxies /node and /rnode the way Open OnDemand does.

OOD's portal (ood-portal.conf.erb + mod_ood_proxy's node_proxy.lua) is
reproduced here with stock modules only, so that a batch-connect app can be
tested through the same path rewriting, header stripping and cookie/Location
rewriting that users get, without installing OOD:

* mod_rewrite [P] rules pick the backend (OOD does it in a Lua fixup hook):
  /node/H/P/x  -> http://H:P/node/H/P/x   (full path kept)
  /rnode/H/P/x -> http://H:P/x            (prefix stripped, "" -> "/")
  and ws://... when the client asks for a websocket upgrade.
* <LocationMatch> blocks with the generator's regexes set MATCH_HOST and
  MATCH_PORT (named captures), which the Header/RequestHeader directives,
  taken over from the generated portal config, use the same way.

Usage:
    with OodApache(tmpdir, free_port()) as ood:
        conn = http.client.HTTPConnection("127.0.0.1", ood.port)
        conn.request("GET", f"/node/{host}/{port}/", headers={"Host": ood.host_header})

A browser must resolve the portal name itself, e.g. Chromium with
--host-resolver-rules="MAP ondemand.test 127.0.0.1", then open ood.url(path).

stdlib only; needs /usr/sbin/apache2 and /usr/lib/apache2/modules (Debian).
"""

import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from .logs import tail

APACHE_BIN = "/usr/sbin/apache2"
MODULE_DIR = "/usr/lib/apache2/modules"
# Workers drop root to this user, so a docroot must be readable by it.
RUN_USER = "www-data"

# unixd and log_config are compiled into Debian's apache2 (see apache2 -l).
MODULES = [
    "mpm_event", "authz_core", "mime", "dir", "alias",
    "rewrite", "headers", "proxy", "proxy_http", "proxy_wstunnel",
]

# OOD >= 4.1 defaults (view.rb default_strip_proxy_*): identity data that must
# never reach a user's backend.
STRIP_HEADERS = ["Authorization", "OIDC_access_token", "OIDC_access_token_expires"] + [
    f"OIDC_CLAIM_{c}" for c in (
        "sub preferred_username given_name zoneinfo locale email email_verified "
        "iss nonce aud acr azp auth_time exp iat jti").split()]
STRIP_COOKIES = [r"mod_auth_openidc_session_\d+", "mod_auth_openidc_session"]

# Same regexes as ood-portal.conf.erb with the default host_regex '[^/]+'.
NODE_MATCH = r"^/node/(?<host>[^/]+)/(?<port>\d+)"
RNODE_MATCH = r"^/rnode/(?<host>[^/]+)/(?<port>\d+)(?<uri>/.*|)"


class OodApache:
    """Private apache2 instance on 127.0.0.1:<port>, configured like OOD's portal.

    workdir       directory for httpd.conf, pid file and logs (created).
    port          TCP port to listen on (127.0.0.1 only).
    portal_host   ServerName; clients should send Host: <portal_host>:<port>.
    preserve_host ProxyPreserveHost On, as OOD does when Dex is enabled
                  (backend sees Host: portal); default Off (backend sees H:P).
    docroot       optional directory served at / and /pun/ (same origin as
                  the proxied apps, e.g. for a rendered view.html.erb).
    remote_user   value of X-Forwarded-User (OOD: the mapped system user).
    log_level     Apache LogLevel; "info proxy:trace2" helps debugging.
    strict        refuse (400) proxied paths with an encoded /, ?, # or %,
                  a backslash or a control character, as OSC's newest
                  mod_ood_proxy does when it validates targets ("secure rnode").
    """

    def __init__(self, workdir, port, portal_host="ondemand.test",
                 preserve_host=False, docroot=None, remote_user="ood-alice",
                 log_level="warn", strict=False):
        self.workdir = Path(workdir).resolve()
        self.port = int(port)
        self.portal_host = portal_host
        self.preserve_host = preserve_host
        self.docroot = Path(docroot).resolve() if docroot else None
        self.remote_user = remote_user
        self.log_level = log_level
        self.strict = strict
        self.conf = self.workdir / "httpd.conf"
        self.error_log = self.workdir / "error.log"
        self.access_log = self.workdir / "access.log"
        self.startup_log = self.workdir / "startup.log"
        self._proc = None

    @property
    def origin(self):
        return f"http://{self.portal_host}:{self.port}"

    @property
    def host_header(self):
        """Value for the Host header of requests sent to 127.0.0.1:<port>."""
        return f"{self.portal_host}:{self.port}"

    def url(self, path="/"):
        return self.origin + path

    # -- config ---------------------------------------------------------------

    def _proxy_location(self, prefix, regex, location_rewrite):
        """One <LocationMatch> like the generator's node/rnode blocks."""
        lines = [f'<LocationMatch "{regex}">']
        lines += [f'  RequestHeader edit* Cookie "{c}=[^;]+;" ""' for c in STRIP_COOKIES]
        lines += [f"  RequestHeader unset {h}" for h in STRIP_HEADERS]
        # proxy.lua: X-Forwarded-Proto from the client side, X-Forwarded-User.
        lines += [
            "  RequestHeader set X-Forwarded-Proto http",
            f'  RequestHeader set X-Forwarded-User "{self.remote_user}"',
            f"  Header edit Location {location_rewrite}",
            r'  Header edit* Set-Cookie ";\s*(?i)Domain[^;]*" ""',
            r'  Header edit* Set-Cookie ";\s*(?i)Path[^;]*" ""',
            f'  Header edit  Set-Cookie "^([^;]+)" "$1; Path={prefix}/%{{MATCH_HOST}}e/%{{MATCH_PORT}}e"',
            # node_proxy.lua: r:custom_response(503, "Failed to connect to H:P")
            '  ErrorDocument 503 "Failed to connect to %{reqenv:MATCH_HOST}:%{reqenv:MATCH_PORT}"',
            "</LocationMatch>",
        ]
        return "\n".join(lines)

    def render_config(self):
        mods = "\n".join(
            f"LoadModule {m}_module {MODULE_DIR}/mod_{m}.so" for m in MODULES)
        # Apache refuses to serve requests as root; it only drops privileges
        # when started as root, so User/Group are set only then.
        user = f"User {RUN_USER}\nGroup {RUN_USER}" if os.geteuid() == 0 else ""
        # Without a docroot everything but /node and /rnode is a plain 404.
        docroot = "RewriteRule ^ - [R=404]"
        if self.docroot:
            docroot = f"""
DocumentRoot "{self.docroot}"
Alias /pun/ "{self.docroot}/"
<Directory "{self.docroot}">
  Require all granted
</Directory>
DirectoryIndex index.html"""
        # Secure rnode (OSC's newest mod_ood_proxy): the raw request path of a proxied target must not carry an
        # encoded /, ?, # or %, a backslash or a control character.
        strict = ""
        if self.strict:
            strict = ("RewriteCond %{THE_REQUEST} "
                      "\"^\\S+\\s+/r?node/[^?\\s]*(%2[Ff]|%3[Ff]|%23|%25|%5[Cc]|\\\\|%[01][0-9A-Fa-f]|%7[Ff])\"\n"
                      "RewriteRule ^/r?node/ - [R=400,L]")
        node = self._proxy_location(
            "/node", NODE_MATCH, '"^[^/]+//[^/]+" ""')
        rnode = self._proxy_location(
            "/rnode", RNODE_MATCH,
            r'"^([^/]+//[^/]+)|(?=/)|^([\./]{1,}(?<!/))" "/rnode/%{MATCH_HOST}e/%{MATCH_PORT}e"')
        banner = " (strict targets)" if self.strict else ""
        return f"""# Generated by devportal/apache.py -- OOD-like test portal{banner}.
ServerRoot "{self.workdir}"
DefaultRuntimeDir "{self.workdir}"
PidFile "{self.workdir}/httpd.pid"
Listen 127.0.0.1:{self.port}
ServerName {self.portal_host}
{mods}
{user}
# Small footprint: tests send a handful of requests at a time.
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
TypesConfig /etc/mime.types
TraceEnable off

ErrorLog "{self.error_log}"
LogLevel {self.log_level}
LogFormat "%h \\"%r\\" %>s %b \\"%{{Location}}o\\" %D" ood
CustomLog "{self.access_log}" ood

<Directory />
  AllowOverride None
  Require all denied
</Directory>

# Like OOD's vhost: every response, proxied or not, carries this header.
Header always set Content-Security-Policy "frame-ancestors {self.origin};"

ProxyRequests Off
ProxyPreserveHost {"On" if self.preserve_host else "Off"}
# X-Forwarded-For/-Host/-Server, as mod_proxy adds by default.
ProxyAddHeaders On
ProxyTimeout 300

# Backend selection (node_proxy.lua + ood/proxy.lua). The scheme is ws when
# the client asks for a websocket, so mod_proxy tunnels the upgrade.
RewriteEngine On
RewriteRule ^ - [E=OOD_SCHEME:http]
RewriteCond %{{HTTP:Upgrade}} =websocket [NC]
RewriteRule ^ - [E=OOD_SCHEME:ws]
{strict}
# Like OOD, the decoded path is handed to mod_proxy, which re-encodes it.
# B=? keeps a decoded "?" (from %3F) in the path -- mod_rewrite would refuse
# it otherwise (CVE-2024-38474) -- but it then reaches the backend as %253f
# where OOD sends %3F. Harmless for real apps; noted so nobody tests it.
RewriteRule ^(/node/([^/]+)/(\\d+).*)$ %{{ENV:OOD_SCHEME}}://$2:$3$1 [P,B=?]
RewriteRule ^/rnode/([^/]+)/(\\d+)$ %{{ENV:OOD_SCHEME}}://$1:$2/ [P]
RewriteRule ^/rnode/([^/]+)/(\\d+)(/.*)$ %{{ENV:OOD_SCHEME}}://$1:$2$3 [P,B=?]

# Response and request header handling (ood-portal.conf.erb).
{node}

{rnode}

# Everything else (after the proxy rules above had their turn).
{docroot}
"""

    def _check_docroot(self):
        """Fail early instead of a puzzling 403: workers run as www-data."""
        if not self.docroot or os.geteuid() != 0:
            return
        uid = pwd.getpwnam(RUN_USER).pw_uid
        for d in [self.docroot, *self.docroot.parents]:
            st = d.stat()
            if st.st_uid != uid and not st.st_mode & 0o001:
                raise RuntimeError(
                    f"docroot {self.docroot}: {d} is not traversable by {RUN_USER}; "
                    "use a world-readable directory (e.g. chmod o+x on its parents)")

    # -- lifecycle ------------------------------------------------------------

    def start(self, timeout=15):
        if self._proc:
            return self
        self._check_docroot()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.render_config())
        with open(self.startup_log, "wb") as out:
            # Foreground (-DFOREGROUND) so the process handle is the parent
            # httpd itself: stop() can signal it without a pid file race.
            self._proc = subprocess.Popen(
                [APACHE_BIN, "-d", str(self.workdir), "-f", str(self.conf), "-DFOREGROUND"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                # Port open but maybe someone else's: make sure we still live.
                time.sleep(0.1)
                if self._proc.poll() is None:
                    return self
                break
            except OSError:
                time.sleep(0.1)
        status = self._proc.poll()
        self.stop()
        raise RuntimeError(
            f"apache2 on port {self.port} did not start (exit status {status}).\n"
            f"--- {self.startup_log}\n{tail(self.startup_log)}"
            f"--- {self.error_log}\n{tail(self.error_log)}")

    def stop(self, timeout=10):
        proc, self._proc = self._proc, None
        if not proc or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # httpd: stop children, then exit
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
