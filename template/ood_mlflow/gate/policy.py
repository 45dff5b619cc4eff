"""The login gate's decisions, apart from any web server.

The gate sits in front of MLflow inside the same process (see app.py, pipeline.py). For
every request it answers one question: serve it, log the user in, answer the
health check, or refuse. Everything here is a pure function of the request's
method, path and headers, so it is tested without a server.

Rules, in the order they apply:
- `<prefix>/health` answers "OK" to anyone and says nothing else.
- The session has one owner, the job's user. A request whose
  `X-Forwarded-User` (set by OOD's proxy to the logged-in portal user) names
  anyone else is refused (403), cookie or not.
- With `trusted_proxies` set (the portal's web nodes), only requests from those
  addresses, carrying `X-Forwarded-User` of the owner, or local connections made
  by the owner's own processes (the readiness check) get further.
- A request that comes from another site (`Origin` neither the portal it came
  through nor the node; `Sec-Fetch-Site` other than same-origin or none) is
  refused (403).
- `POST <prefix>/login` with the session secret (the form on the OOD session
  card) sets an HttpOnly, SameSite=Strict cookie that expires with the session
  and redirects to the UI. Its Path is the one the browser sees: through the
  portal (X-Forwarded-Host or -User present) `/rnode/<host>/<port>` or
  `/node/<host>/<port>`, straight to the node the prefix MLflow serves under.
- Anything else needs that cookie; without it: 401, with a wrong one: 403.
  Every cookie of the gate's name is tried, so a cookie planted by a page on the
  same portal origin cannot lock the owner out.
- Routes a session never offers (routes.REFUSED) are refused; only the routes
  on the session's allowlist pass (read-only or read-write, routes.allowed);
  IDs in the route, the query and the JSON body must have MLflow's shape
  (ids.py; the body is checked in the pipeline, bodies.py); artifact routes
  pass only to the files the gate has confined them to (artifacts.py).
- What passes reaches MLflow as a local request: Host is `localhost:<port>`
  and Origin is dropped, because the gate has already made the checks that
  MLflow's own Host/Origin middleware (3.5+) would make with the wrong names.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from ..session import COOKIE_NAME, LOGIN_FIELD
from . import ids, routes
from .bodies import GRAPHQL, JSON

MAX_LOGIN_BODY = 4096

NOT_LOGGED_IN = (
    "This MLflow session is private. Open it from the Open OnDemand portal: "
    "My Interactive Sessions, then 'Connect to MLflow' on this session's card."
)
WRONG_LOGIN = (
    "This login does not belong to this MLflow session. Use 'Connect to MLflow' "
    "on the session's card in the Open OnDemand portal."
)
CROSS_SITE = "Cross-site request refused: it did not come from the Open OnDemand portal."
NOT_THE_OWNER = (
    "This MLflow session belongs to another portal user. Launch your own MLflow session "
    "from the Open OnDemand portal."
)
NOT_THROUGH_PORTAL = (
    "This MLflow session answers only through the Open OnDemand portal. Open it with "
    "'Connect to MLflow' on the session's card."
)
NOT_OFFERED = (
    "This part of MLflow is switched off in Open OnDemand sessions: it would run programs on the "
    "compute node or send data from it."
)
NO_DEMO = (
    "Start Demo is switched off in Open OnDemand sessions: it would write MLflow's sample experiments, traces "
    "and prompts into this tracking store, which may be your project's."
)
UNKNOWN_ARTIFACT_ROUTE = "This artifact request is not supported by the Open OnDemand MLflow session."
NOT_ON_LIST = (
    "This MLflow action is switched off in Open OnDemand sessions: a session offers what the MLflow UI needs to "
    "browse and edit the tracking store, and nothing that runs programs, calls out or administers."
)
NO_SUCH_ROUTE = "MLflow has no such route."
NO_PDF_PREVIEW = (
    "PDF previews are switched off in Open OnDemand sessions of MLflow 2.x: its PDF viewer can run code hidden "
    "in a PDF file (CVE-2024-4367). Download the file to open it, or choose an MLflow 3.x version on the form."
)
READ_ONLY_REFUSAL = (
    "This MLflow session is read-only, so nothing in the tracking store can be changed. "
    "To make changes, launch a new session with Store access 'Read and write'."
)
# Sec-Fetch-Site values of a request the portal's own pages (or the user typing) made.
SAME_ORIGIN_FETCH = ("same-origin", "none", "")


@dataclass(frozen=True)
class Decision:
    action: str  # "pass", "health", "login", "respond"
    status: int = 200
    body: str = ""
    headers: tuple = ()  # extra response headers, (name, value) pairs
    set_request_headers: dict = field(default_factory=dict)  # for "pass"
    drop_request_headers: tuple = ()  # for "pass"
    artifact: Optional[routes.ArtifactRoute] = None  # "pass" once the artifact path is confined
    route_id: str = ""  # the id in an artifact route's path (logged models)
    inspect: str = ""  # "pass" once the body is checked (bodies.py): JSON or GRAPHQL
    route: str = ""  # the MLflow route of a request whose body is checked
    default_view: str = ""  # "pass", then add ui_view.snippet(default_view) to the UI's index page


def cookie_token(secret: str, owner: str = "", ends_at: int = 0) -> str:
    """The cookie value: derived from the secret so the secret itself never sits in a cookie jar,
    and bound to the session's owner and end."""
    message = f"ood-mlflow-session-cookie|{owner}|{ends_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def parse_networks(values) -> tuple:
    """Addresses or CIDRs (site key trusted_proxies) as networks; raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(str(v).strip(), strict=False) for v in values)


@dataclass(frozen=True)
class GatePolicy:
    secret: str
    port: int
    prefix: str = ""  # the --static-prefix MLflow serves under ("" behind /rnode)
    read_only: bool = False
    owner: str = ""  # the job's user; "" only in unit tests of other rules
    trusted_proxies: tuple = ()  # ip networks of the portal's web nodes; () trusts any address
    ends_at: int = 0  # epoch seconds when the session's time runs out; 0: no Max-Age
    default_view: str = ""  # site: what MLflow 3.x's UI shows first in a new tab; "": leave the UI alone
    proxy_path: str = ""  # the session's path on the portal, /rnode/<host>/<port> (the cookie's Path there)
    checks: bool = True  # False only by app.py's test-only switch: no read-write allowlist, no ID checks
    pdf_previews: bool = True  # False for MLflow 2.x, whose UI's pdf.js 2.1 runs code from a PDF (CVE-2024-4367)

    def __post_init__(self):
        if len(self.secret) < 32:
            raise ValueError("the session secret must have at least 32 characters")

    @property
    def login_path(self) -> str:
        return self.prefix + "/login"

    @property
    def home_path(self) -> str:
        return self.prefix + "/"

    def decide(self, method: str, path: str, headers: dict, query: str = "", client: Optional[tuple] = None,
               local_owner: Callable[[], bool] = lambda: False) -> Decision:
        """`headers` maps lower-case names to values; `client` is the peer's (address, port);
        `local_owner()` tells whether a local peer is a process of the owner (asked only when needed)."""
        method = method.upper()
        if path in (self.prefix + "/health", "/health") and method in ("GET", "HEAD"):
            return Decision("health", 200, "OK")
        refusal = self._owner_refusal(headers, client, local_owner)
        if refusal:
            return refusal
        if not origin_allowed(headers):
            return _page(403, CROSS_SITE)
        if path == self.login_path:
            if method == "POST":
                return Decision("login")
            return _page(401, NOT_LOGGED_IN)
        presented = request_cookies(headers.get("cookie", ""), COOKIE_NAME)
        if not presented:
            return _page(401, NOT_LOGGED_IN)
        expected = self.cookie_value.encode()
        if not any(hmac.compare_digest(value.encode(), expected) for value in presented):
            return _page(403, WRONG_LOGIN)
        return self._route_decision(method, routes.mlflow_route(path, self.prefix), query, headers)

    def _owner_refusal(self, headers: dict, client, local_owner) -> Optional[Decision]:
        user = headers.get("x-forwarded-user")
        if user is not None and user.strip() != self.owner:
            return _page(403, NOT_THE_OWNER)
        if not self.trusted_proxies:
            return None
        if user is not None and _address_in(client, self.trusted_proxies):
            return None
        # The owner's own processes on the node (the readiness check), which send no X-Forwarded-User.
        return None if local_owner() else _page(403, NOT_THROUGH_PORTAL)

    def _route_decision(self, method: str, route: str, query: str, headers: dict) -> Decision:
        local = {"set_request_headers": {"host": f"localhost:{self.port}"}, "drop_request_headers": ("origin",)}
        if routes.DEMO.match(route):
            return permission_denied(NO_DEMO)
        if routes.never_offered(route, method):
            return permission_denied(NOT_OFFERED)
        if routes.empty_gateway(method, route):
            return Decision("respond", 200, routes.EMPTY_GATEWAY,
                            (("Content-Type", "application/json"), ("Cache-Control", "no-store")))
        variables = routes.allowed(method, route, self.read_only)
        if variables is None and (self.read_only or self.checks):
            return _not_listed(method, route, self.read_only)
        message = ids.request_refusal(route, variables or {}, query) if self.checks else ""
        if message:
            return permission_denied(message)
        artifact, match = routes.artifact_route(method, route)
        if artifact and not self.pdf_previews and _pdf_preview(artifact, query, headers):
            return permission_denied(NO_PDF_PREVIEW)
        if artifact:
            return Decision("pass", artifact=artifact, route_id=match.groupdict().get("id") or "", **local)
        if routes.names_artifacts(route):
            return permission_denied(UNKNOWN_ARTIFACT_ROUTE)
        if routes.GRAPHQL.fullmatch(route):
            return Decision("pass", inspect=GRAPHQL, route=route, **local)
        if method not in ("GET", "HEAD") or _sends_body(headers):
            return Decision("pass", inspect=JSON, route=route, **local)
        if self.default_view and route == "/" and method in ("GET", "HEAD"):
            # A full answer to rewrite: no 304 from a cached copy of the page.
            return Decision("pass", default_view=self.default_view, set_request_headers=local["set_request_headers"],
                            drop_request_headers=("origin", "if-none-match", "if-modified-since"))
        return Decision("pass", **local)

    @property
    def cookie_value(self) -> str:
        return cookie_token(self.secret, self.owner, self.ends_at)

    def login(self, body: bytes, headers: dict) -> Decision:
        """The answer to `POST <prefix>/login` with a form-encoded body."""
        try:
            form = parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8"), max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            form = {}
        given = (form.get(LOGIN_FIELD) or [""])[0]
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return _page(403, WRONG_LOGIN)
        secure = "; Secure" if _forwarded_proto(headers) == "https" else ""
        # Max-Age: the browser drops the cookie when the session's time is up, so no login outlives its session.
        max_age = f"; Max-Age={max(0, self.ends_at - int(time.time()))}" if self.ends_at else ""
        cookie = (
            f"{COOKIE_NAME}={self.cookie_value}; Path={self.cookie_path(headers)}; "
            f"HttpOnly; SameSite=Strict{max_age}{secure}"
        )
        return Decision(
            "respond",
            303,
            "",
            (("Location", self.home_path), ("Set-Cookie", cookie), ("Cache-Control", "no-store")),
        )

    def cookie_path(self, headers: dict) -> str:
        """The login cookie's Path: the path the browser sent the login to. Behind /rnode the gate sees the path
        with the proxy's part stripped, so it names the portal's path itself (OOD's proxy rewrites Path to the
        same); a request straight to the node gets the path MLflow serves under."""
        through_portal = "x-forwarded-host" in headers or "x-forwarded-user" in headers
        return self.proxy_path if through_portal and self.proxy_path else self.prefix or "/"


def _not_listed(method: str, route: str, read_only: bool) -> Decision:
    """The answer to a request that is not on the session's allowlist."""
    if method not in ("GET", "HEAD"):
        return permission_denied(READ_ONLY_REFUSAL if read_only else NOT_ON_LIST)
    if routes.names_artifacts(route):
        return permission_denied(UNKNOWN_ARTIFACT_ROUTE)
    # Both lists hold every GET MLflow 2.22 and 3.17 route but the refused ones: MLflow has no route for this one
    # and would answer 404, which the UI expects for some it asks for (users/current, of MLflow's auth app).
    return json_error(404, "ENDPOINT_NOT_FOUND", NO_SUCH_ROUTE)


def _sends_body(headers: dict) -> bool:
    """A GET or HEAD that carries a body, which MLflow may read as the request (request_json)."""
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


def _pdf_preview(artifact: routes.ArtifactRoute, query: str, headers: dict) -> bool:
    """A PDF the UI page fetches to show it (Sec-Fetch-Dest: empty): MLflow 2.x's UI picks its PDF viewer by the
    file's extension. A download (a navigation) or a client outside the browser gets the file."""
    paths = parse_qs(query, keep_blank_values=True).get(artifact.path_param, []) if artifact.path_param else []
    return headers.get("sec-fetch-dest", "") == "empty" and any(p.lower().endswith(".pdf") for p in paths)


def origin_allowed(headers: dict) -> bool:
    """Same-site only: the Origin must be the portal the request came through, or the node."""
    if headers.get("sec-fetch-site", "").strip().lower() not in SAME_ORIGIN_FETCH:
        return False  # cross-site, or same-site: another host of the portal's domain
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-origin request
    netloc = urlsplit(origin.strip()).netloc.lower()
    if not netloc:
        return False  # "null" and other opaque origins
    trusted = {headers.get("host", "").strip().lower()}
    trusted.update(h.strip().lower() for h in headers.get("x-forwarded-host", "").split(","))
    trusted.discard("")
    return netloc in trusted


def request_cookies(header: str, name: str) -> list:
    """Every value of cookie `name` in a Cookie header (a browser sends one per matching path)."""
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(value.strip().strip('"'))
    return values


def _address_in(client, networks) -> bool:
    if not client:
        return False
    try:
        ip = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in network for network in networks)


def _forwarded_proto(headers: dict) -> str:
    return headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()


def json_error(status: int, code: str, message: str) -> Decision:
    """An error in MLflow's own JSON shape, so the UI shows the message."""
    body = json.dumps({"error_code": code, "message": message})
    return Decision("respond", status, body,
                    (("Content-Type", "application/json"), ("Cache-Control", "no-store")))


def permission_denied(message: str) -> Decision:
    """A refusal the UI shows as it shows MLflow's own (a 403 PERMISSION_DENIED with the message)."""
    return json_error(403, "PERMISSION_DENIED", message)


def _page(status: int, message: str) -> Decision:
    body = (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>MLflow session</title></head>"
        f"<body><h1>MLflow session</h1><p>{message}</p></body></html>"
    )
    return Decision(
        "respond",
        status,
        body,
        (("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")),
    )
