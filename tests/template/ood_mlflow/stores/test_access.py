"""How a store is opened for each Store access choice and schema state."""

import pytest

from ood_mlflow.errors import LaunchError
from ood_mlflow.stores.access import (
    BACKUP_UPGRADE,
    COPY,
    COPY_UPGRADE,
    READ_ONLY,
    SERVE,
    SERVE_READ_ONLY,
    UPGRADE,
    WRITE,
    sqlite_action,
)
from ood_mlflow.stores.schema import NEWER, NOT_MLFLOW, OLDER, SAME, Migrations, compare

MIGRATIONS = Migrations(frozenset({"c3"}), frozenset({"a1", "b2", "c3"}))


@pytest.mark.parametrize("revisions,state", [
    ({"c3"}, SAME), ({"b2"}, OLDER), ({"a1"}, OLDER), ({"d4"}, NEWER), ({"c3", "d4"}, NEWER), (set(), NOT_MLFLOW),
])
def test_compare(revisions, state):
    assert compare(revisions, MIGRATIONS) == state


def action(access, state, wal=False):
    return sqlite_action(access, state, wal, "/s/mlruns.db", {"b2"}, "3.17.2", {"c3"})


@pytest.mark.parametrize("access,state,wal,expected", [
    (WRITE, SAME, False, SERVE), (WRITE, SAME, True, SERVE),
    (UPGRADE, SAME, False, SERVE), (UPGRADE, OLDER, False, BACKUP_UPGRADE),
    (READ_ONLY, SAME, False, SERVE_READ_ONLY), (READ_ONLY, SAME, True, COPY),
    (READ_ONLY, OLDER, False, COPY_UPGRADE), (READ_ONLY, OLDER, True, COPY_UPGRADE),
    ("anything-else", SAME, False, SERVE),
])
def test_actions(access, state, wal, expected):
    assert action(access, state, wal) == expected


def test_a_schema_change_is_never_made_unasked():
    with pytest.raises(LaunchError) as error:
        action(WRITE, OLDER)
    line = error.value.line
    assert "schema revision b2" in line and "MLflow 3.17.2 expects c3" in line
    assert "'Read-only'" in line and "'Upgrade an older SQLite store'" in line


@pytest.mark.parametrize("access", [WRITE, READ_ONLY, UPGRADE])
def test_newer_and_foreign_databases_are_refused(access):
    with pytest.raises(LaunchError, match="newer MLflow than 3.17.2"):
        action(access, NEWER)
    with pytest.raises(LaunchError, match="not an MLflow store"):
        action(access, NOT_MLFLOW)


def test_plan_round_trip():
    from ood_mlflow.plan import Plan
    from ood_mlflow.settings import Settings

    plan = Plan("3.17.2", "sqlite", "/s/m.db", "sqlite:////s/m.db", "sqlite:////s/m.db", "/s/mlartifacts", True,
                Settings(trusted_proxies=("10.0.0.1",)), scratch=("/tmp/x",))
    assert Plan.from_dict(dict(plan.to_dict(), unknown="ignored")) == plan



def test_an_unknown_store_access_is_an_error_not_read_and_write():
    from ood_mlflow.settings import Settings

    with pytest.raises(LaunchError, match="'read-write' is not one this app knows"):
        Settings.from_dict({"tracking_uri": "/s/m.db", "store_access": "read-write"})
    assert Settings.from_dict({"tracking_uri": "/s/m.db"}).store_access == WRITE
