"""PostgreSQL tracking URIs: what the form accepts, what is refused, and the URLs MLflow gets."""

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.stores.access import CONVERT, READ_ONLY, SERVE, SERVE_READ_ONLY, UPGRADE, WRITE, postgres_action
from ood_mlflow.stores.postgres_uri import parse_postgres
from ood_mlflow.stores.schema import NEWER, NOT_MLFLOW, OLDER, SAME
from ood_mlflow.stores.uri import POSTGRESQL, parse_store


@pytest.mark.parametrize("typed,shown,driver", [
    ("postgresql://alice@db.example.org/mlflow", "postgresql://alice@db.example.org:5432/mlflow", ""),
    ("postgresql://alice@db.example.org:6432/mlflow?sslmode=require",
     "postgresql://alice@db.example.org:6432/mlflow?sslmode=require", ""),
    ("postgresql+psycopg://db.example.org/ml", "postgresql+psycopg://db.example.org:5432/ml", "psycopg"),
    ("POSTGRESQL+PSYCOPG2://a%40b@[::1]:5433/my%20db", "postgresql+psycopg2://a%40b@[::1]:5433/my%20db", "psycopg2"),
])
def test_accepted(typed, shown, driver):
    store = parse_store(typed)
    assert (store.kind, store.location, store.database.driver) == (POSTGRESQL, shown, driver)


@pytest.mark.parametrize("typed,words", [
    ("postgresql://alice:hunter2@db/mlflow", "contains a password"),
    ("postgresql://alice:@db/mlflow", "contains a password"),
    ("postgresql://alice:p@ss@db/mlflow", "contains a password"),
    ("postgresql://alice@db/mlflow?password=hunter2", "contains a password"),
    ("postgresql://alice@db/mlflow?password%3Dhunter2", "contains a password"),
    ("postgresql://alice@db/mlflow?p%2561ssword=hunter2", "contains a password"),
    ("postgresql://alice%3Ahunter2@db/mlflow", "contains a password"),
    ("postgresql:/db/mlflow", "must start with postgresql://"),
    ("postgresql:///mlflow", "names no database server"),
    ("postgresql://db.example.org", "names no database"),
    ("postgresql://db.example.org:99999/mlflow", "malformed"),
    ("postgresql://db/mlflow?options=-c%20default_transaction_read_only%3Doff", "options"),
])
def test_refused(typed, words):
    with pytest.raises(LaunchError) as error:
        parse_postgres(typed)
    assert words in error.value.cause
    assert "hunter2" not in error.value.line, "the password was repeated in the message"
    if "password" in words:
        assert "~/.pgpass" in error.value.fix and "chmod 600" in error.value.fix


def test_urls_for_mlflow():
    target = parse_postgres("postgresql://alice@db.example.org/mlflow?sslmode=verify-full")
    assert target.libpq_uri == "postgresql://alice@db.example.org:5432/mlflow?sslmode=verify-full"
    write = target.sqlalchemy_url("psycopg2", read_only=False)
    assert write.startswith("postgresql+psycopg2://alice@db.example.org:5432/mlflow?sslmode=verify-full&")
    assert "default_transaction_read_only" not in write
    read_only = target.sqlalchemy_url("psycopg", read_only=True)
    assert read_only.startswith("postgresql+psycopg://")
    assert "options=-c%20default_transaction_read_only%3Don" in read_only


HEADS = {"head2"}


@pytest.mark.parametrize("access,state,expected", [
    (WRITE, SAME, SERVE), (UPGRADE, SAME, SERVE), (READ_ONLY, SAME, SERVE_READ_ONLY),
])
def test_same_schema_is_served(access, state, expected):
    assert postgres_action(access, True, state, "postgresql://h:5432/d", HEADS, "3.17.2", HEADS) == expected


@pytest.mark.parametrize("access,tables,state,words", [
    (WRITE, True, OLDER, ["would migrate it", "pg_dump", "mlflow db upgrade"]),
    (READ_ONLY, True, OLDER, ["even read-only"]),
    (UPGRADE, True, OLDER, ["upgrades only SQLite stores", "pg_dump --format=custom"]),
    (WRITE, True, NEWER, ["newer MLflow"]),
    (READ_ONLY, True, NEWER, ["newer MLflow"]),
    (WRITE, False, NOT_MLFLOW, ["is empty", "does not create one"]),
    (UPGRADE, False, NOT_MLFLOW, ["is empty"]),
    (WRITE, True, NOT_MLFLOW, ["no MLflow store"]),
    (CONVERT, True, SAME, ["applies to directory stores"]),
])
def test_other_schemas_are_never_opened(access, tables, state, words):
    with pytest.raises(LaunchError) as error:
        postgres_action(access, tables, state, "postgresql://h:5432/d", {"old1"}, "3.17.2", HEADS)
    for word in words:
        assert word in error.value.line
