"""PostgreSQL tracking-store URIs: what the form accepts, and the URLs made from it (pure).

Accepted (the same strings training code gives `mlflow.set_tracking_uri`):
  postgresql://user@host[:port]/dbname[?sslmode=...]
  postgresql+psycopg://...    psycopg 3
  postgresql+psycopg2://...   psycopg2
A password is never accepted in the URI: it would end up in the form cache, the
staged session and the job's environment. libpq reads it from ~/.pgpass (or the
PGPASSFILE/PGSERVICEFILE a site documents) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import LaunchError

SCHEMES = {"postgresql": "", "postgresql+psycopg": "psycopg", "postgresql+psycopg2": "psycopg2"}
# libpq connection options a user may add; the session sets the others itself.
ALLOWED_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "target_session_attrs")
DEFAULT_PORT = 5432
CONNECT_TIMEOUT = 10  # seconds libpq waits for the server, so an unreachable one fails fast
APPLICATION_NAME = "ood-mlflow"  # what the database's administrators see in pg_stat_activity
# Every transaction of the session's connections is read-only: enforced by the server itself.
READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"
PGPASS_FIX = ("put the password in ~/.pgpass instead, one line host:port:dbname:user:password, "
              "and make it private with chmod 600 ~/.pgpass (or use the PGPASSFILE your site documents)")


def is_postgres(text: str) -> bool:
    return text.partition(":")[0].lower() in SCHEMES


@dataclass(frozen=True)
class PostgresTarget:
    """One PostgreSQL database, as the user named it (never with a password)."""

    host: str
    port: int
    dbname: str
    user: str = ""  # "" lets libpq use the login name, as training jobs would
    driver: str = ""  # "", "psycopg" or "psycopg2": what the user asked for
    options: tuple = ()  # ((name, value), ...) from ALLOWED_OPTIONS

    def _url(self, scheme: str, extra: tuple = ()) -> str:
        user = quote(self.user, safe="") + "@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = urlencode(self.options + extra, quote_via=quote)
        return f"{scheme}://{user}{host}:{self.port}/{quote(self.dbname, safe='')}" + (f"?{query}" if query else "")

    @property
    def display(self) -> str:
        """For the card and for training code: the URI with the user's own driver choice."""
        return self._url("postgresql+" + self.driver if self.driver else "postgresql")

    @property
    def libpq_uri(self) -> str:
        """What libpq (psycopg or psycopg2 directly) connects to."""
        return self._url("postgresql")

    def sqlalchemy_url(self, driver: str, read_only: bool) -> str:
        """What MLflow opens, with the driver the environment has; read-only at the server when asked."""
        return self._url(f"postgresql+{driver}", connection_options(read_only))


def connection_options(read_only: bool) -> tuple:
    """The libpq options every connection of a session carries, its check's and MLflow's alike."""
    options = (("connect_timeout", str(CONNECT_TIMEOUT)), ("application_name", APPLICATION_NAME))
    return options + ((("options", READ_ONLY_OPTIONS),) if read_only else ())


def parse_postgres(text: str, example_user: str = "my_user") -> PostgresTarget:
    """The database a PostgreSQL URI names, or raise LaunchError naming what is wrong."""
    scheme = text.partition(":")[0].lower()
    shape = f"postgresql://{example_user}@db-host.example.org:5432/dbname"
    if not text[len(scheme) + 1:].startswith("//"):
        raise LaunchError(f"The PostgreSQL URI {_shown(text)!r} must start with {scheme}://", f"Write it as {shape}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise LaunchError(f"The PostgreSQL URI {_shown(text)!r} cannot be read (its port or host is malformed)",
                          f"Write it as {shape}") from None
    if _has_password(parts):
        raise LaunchError("The PostgreSQL URI contains a password, which must never be typed into the form "
                          f"(it would be saved with the form and the session): {_shown(text)!r}",
                          f"Remove it from the URI and {PGPASS_FIX}")
    if not parts.hostname:
        raise LaunchError(f"The PostgreSQL URI {_shown(text)!r} names no database server",
                          f"Write it as {shape}, with the server your site's database service gave you")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise LaunchError(f"The PostgreSQL URI {_shown(text)!r} names no database (the part after the last /)",
                          f"Write it as {shape}")
    options = tuple(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted({name for name, _ in options if name not in ALLOWED_OPTIONS})
    if unknown:
        raise LaunchError(f"The PostgreSQL URI {_shown(text)!r} has the option(s) {', '.join(unknown)}, which this "
                          f"app does not pass on",
                          f"Remove them; the options it accepts are {', '.join(ALLOWED_OPTIONS)}")
    return PostgresTarget(host=parts.hostname, port=port or DEFAULT_PORT, dbname=dbname,
                          user=unquote(parts.username or ""), driver=SCHEMES[scheme], options=options)


def _fully_decoded(text: str) -> str:
    """`text` percent-decoded until it stops changing, as a lenient parser may read it."""
    for _ in range(10):
        once = unquote(text)
        if once == text:
            break
        text = once
    return text


def _is_password_option(piece: str) -> bool:
    return _fully_decoded(piece).split("=", 1)[0].strip().lower() == "password"


def _has_password_option(query: str) -> bool:
    """A password option however it is spelt: `password=`, `%70assword=`, `password%3D…`, twice encoded."""
    return any(_is_password_option(piece) for piece in query.replace(";", "&").split("&"))


def _has_password(parts) -> bool:
    return (parts.password is not None or ":" in _fully_decoded(parts.username or "")
            or _has_password_option(parts.query))


def _shown(text: str) -> str:
    """The URI without anything that may be a password, for messages (they land in output.log and on the card)."""
    try:
        parts = urlsplit(text)
        if parts.password is not None or ":" in _fully_decoded(parts.username or ""):
            text = text.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)
        if _has_password_option(parts.query):
            kept = [piece for piece in parts.query.replace(";", "&").split("&") if not _is_password_option(piece)]
            text = text.split("?", 1)[0] + "?" + "&".join(kept + ["password=***"])
    except ValueError:
        return text.split("@")[-1]
    return text
