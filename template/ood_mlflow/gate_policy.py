"""The login gate's decisions, apart from any web server.

The gate sits in front of MLflow inside the same process (see gate_app). For
every request it answers one question: serve it, log the user in, answer the
health check, or refuse. Everything here is a pure function of the request's
method, path and headers, so it is tested without a server.

Rules:
- `<prefix>/health` answers "OK" to anyone and says nothing else.
- `POST <prefix>/login` with the session secret (the form on the OOD session
  card) sets an HttpOnly, SameSite=Strict cookie and redirects to the UI.
- Anything else needs that cookie; without it: 401, with a wrong one: 403.
- In a read-only session, a request that could change the store (any method
  but GET/HEAD/OPTIONS, except searches) is refused with a message the UI shows.
- A request whose Origin is neither the portal it came through nor the node
  is refused (403), cookie or not.
- What passes reaches MLflow as a local request: Host is `localhost:<port>`
  and Origin is dropped, because the gate has already made the checks that
  MLflow's own Host/Origin middleware (3.5+) would make with the wrong names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

COOKIE_NAME = "ood_mlflow_session"
LOGIN_FIELD = "password"
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
READ_ONLY = (
    "This MLflow session is read-only, so nothing in the tracking store can be changed. "
    "To make changes, launch a new session with Store access 'Read and write'."
)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# POSTs the UI makes only to read: searches, GraphQL queries, its own telemetry.
READING_POST_SUFFIXES = ("/search", "/graphql", "/ui-telemetry")


@dataclass(frozen=True)
class Decision:
    action: str  # "pass", "health", "login", "respond"
    status: int = 200
    body: str = ""
    headers: tuple = ()  # extra response headers, (name, value) pairs
    set_request_headers: dict = field(default_factory=dict)  # for "pass"
    drop_request_headers: tuple = ()  # for "pass"


def cookie_token(secret: str) -> str:
    """The cookie value: derived from the secret so the secret itself never sits in a cookie jar."""
    return hmac.new(secret.encode(), b"ood-mlflow-session-cookie", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class GatePolicy:
    secret: str
    port: int
    prefix: str = ""  # the --static-prefix MLflow serves under ("" behind /rnode)
    read_only: bool = False

    def __post_init__(self):
        if len(self.secret) < 32:
            raise ValueError("the session secret must have at least 32 characters")

    @property
    def login_path(self) -> str:
        return self.prefix + "/login"

    @property
    def home_path(self) -> str:
        return self.prefix + "/"

    def decide(self, method: str, path: str, headers: dict) -> Decision:
        """`headers` maps lower-case names to values."""
        method = method.upper()
        if path in (self.prefix + "/health", "/health") and method in ("GET", "HEAD"):
            return Decision("health", 200, "OK")
        if not origin_allowed(headers):
            return _page(403, CROSS_SITE)
        if path == self.login_path:
            if method == "POST":
                return Decision("login")
            return _page(401, NOT_LOGGED_IN)
        presented = request_cookie(headers.get("cookie", ""), COOKIE_NAME)
        if presented is None:
            return _page(401, NOT_LOGGED_IN)
        if not hmac.compare_digest(presented.encode(), cookie_token(self.secret).encode()):
            return _page(403, WRONG_LOGIN)
        if self.read_only and method not in SAFE_METHODS and not path.endswith(READING_POST_SUFFIXES):
            return _json_error(403, "PERMISSION_DENIED", READ_ONLY)
        return Decision(
            "pass",
            set_request_headers={"host": f"localhost:{self.port}"},
            drop_request_headers=("origin",),
        )

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
        cookie = (
            f"{COOKIE_NAME}={cookie_token(self.secret)}; Path={self.prefix or '/'}; "
            f"HttpOnly; SameSite=Strict{secure}"
        )
        return Decision(
            "respond",
            303,
            "",
            (("Location", self.home_path), ("Set-Cookie", cookie), ("Cache-Control", "no-store")),
        )


def origin_allowed(headers: dict) -> bool:
    """Same-site only: the Origin must be the portal the request came through, or the node."""
    if headers.get("sec-fetch-site", "") == "cross-site":
        return False
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


def request_cookie(header: str, name: str):
    """The value of cookie `name` in a Cookie header, or None."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def _forwarded_proto(headers: dict) -> str:
    return headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()


def _json_error(status: int, code: str, message: str) -> Decision:
    """An error in MLflow's own JSON shape, so the UI shows the message."""
    body = json.dumps({"error_code": code, "message": message})
    return Decision("respond", status, body,
                    (("Content-Type", "application/json"), ("Cache-Control", "no-store")))


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
