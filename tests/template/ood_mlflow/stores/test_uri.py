"""What a user types on the form, and the store MLflow is given for it."""

import pytest

from ood_mlflow.stores.uri import Store, StoreUriError, directory_url, parse_store, sqlite_url


@pytest.mark.parametrize("typed,kind,path", [
    ("/scratch/project_2001234/mlruns", "directory", "/scratch/project_2001234/mlruns"),
    ("  /scratch/project_2001234/mlruns/  ", "directory", "/scratch/project_2001234/mlruns"),
    ("/scratch/p/mlruns.db", "sqlite", "/scratch/p/mlruns.db"),
    ("/scratch/p/runs.SQLite3", "sqlite", "/scratch/p/runs.SQLite3"),
    ("/scratch/p/runs.sqlite", "sqlite", "/scratch/p/runs.sqlite"),
    ("sqlite:////scratch/p/mlruns.db", "sqlite", "/scratch/p/mlruns.db"),
    ("file:///scratch/p/mlruns", "directory", "/scratch/p/mlruns"),
    ("file://localhost/scratch/p/mlruns", "directory", "/scratch/p/mlruns"),
    ("file:/scratch/p/mlruns", "directory", "/scratch/p/mlruns"),
    ("file:///scratch/my%20runs", "directory", "/scratch/my runs"),
    ("/scratch/p/../q/./mlruns", "directory", "/scratch/q/mlruns"),
    ("//scratch/p/mlruns", "directory", "/scratch/p/mlruns"),
    ("/scratch/my runs/it's $(here).db", "sqlite", "/scratch/my runs/it's $(here).db"),
])
def test_accepted_forms(typed, kind, path):
    assert parse_store(typed) == Store(kind, path)


def test_home_is_expanded_with_the_given_home():
    assert parse_store("~/mlruns", home="/home/u") == Store("directory", "/home/u/mlruns")
    assert parse_store("~", home="/home/u") == Store("directory", "/home/u")


@pytest.mark.parametrize("typed,words", [
    ("", "No tracking store"),
    ("   ", "No tracking store"),
    ("mlruns", "not an absolute path"),
    ("./mlruns", "not an absolute path"),
    ("~/mlruns", "not an absolute path"),  # no home known
    ("sqlite:///mlruns.db", "four slashes"),
    ("sqlite://///scratch/p/mlruns.db", "four slashes"),
    ("sqlite://scratch/p.db", "four slashes"),
    ("sqlite:////scratch/p.db?mode=ro", "query options"),
    ("file://otherhost/scratch/p/mlruns", "names the host"),
    ("http://server:5000", "scheme 'http:'"),
    ("postgresql://u:hunter2@db/mlflow", "contains a password"),
    ("postgres://u@db/mlflow", "scheme 'postgres:'"),
    ("s3://bucket/mlruns", "scheme 's3:'"),
    ("/scratch/p\n/mlruns", "line break"),
])
def test_refused_with_cause_and_fix(typed, words):
    with pytest.raises(StoreUriError) as error:
        parse_store(typed)
    assert words in error.value.cause
    assert error.value.fix
    assert error.value.line.startswith("ERROR: ") and "\n" not in error.value.line


def test_sqlite_fix_shows_the_right_uri():
    with pytest.raises(StoreUriError) as error:
        parse_store("sqlite:///scratch/p/mlruns.db")
    assert "'sqlite:////scratch/p/mlruns.db'" in error.value.fix


def test_uris_for_mlflow_and_training_code():
    db = parse_store("/scratch/p/mlruns.db")
    assert db.backend_uri() == "sqlite:////scratch/p/mlruns.db"
    assert db.default_artifact_root == "/scratch/p/mlartifacts"
    directory = parse_store("file:///scratch/p/mlruns")
    assert directory.backend_uri() == "/scratch/p/mlruns"
    assert directory.default_artifact_root == "/scratch/p/mlruns"



SPECIAL_NAMES = ["a?b.db", "x%41.db", "a#b.db", "it's a \"db\".db", "plain.db"]
OPEN_WITH_SQLALCHEMY = (
    "import sqlalchemy, sys\n"
    "engine = sqlalchemy.create_engine(sys.argv[1])\n"
    "with engine.connect() as db:\n"
    "    db.exec_driver_sql('CREATE TABLE t (x)')\n"
)


@pytest.mark.launch
@pytest.mark.parametrize("major", ["2", "3"])
def test_sqlite_urls_open_exactly_the_file_given(tmp_path, major):
    """The URL goes through the real SQLAlchemy of each MLflow environment (2.0 and 2.1 read it differently)."""
    import subprocess

    from devportal.testbed import mlflow_python

    python = str(mlflow_python(major))
    decodes = subprocess.run([python, "-c", "import sqlalchemy; print(sqlalchemy.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip() >= "2.1"
    folder = tmp_path / "p%3Fq #1"
    folder.mkdir()
    for name in SPECIAL_NAMES:
        path = folder / name
        subprocess.run([python, "-c", OPEN_WITH_SQLALCHEMY, sqlite_url(str(path), decodes_percent=decodes)],
                       check=True, capture_output=True, timeout=60)
        assert path.is_file(), f"{sqlite_url(str(path), decodes_percent=decodes)} did not open {path}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(SPECIAL_NAMES), "another file was opened"


def test_directory_urls_survive_mlflows_percent_decoding():
    from urllib.parse import unquote, urlparse

    for path in ["/s/mlruns", "/s/a%41/mlruns", "/s/a?b#c/mlruns"]:
        url = directory_url(path)
        assert unquote(urlparse(url).path if url.startswith("file:") else url) == path
