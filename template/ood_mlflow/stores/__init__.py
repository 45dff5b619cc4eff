"""Tracking stores: what a user may give on the form, and looking at a store before MLflow opens it.

kinds.py describes each kind of store once (directory, SQLite, PostgreSQL); uri.py turns the form's text into
one Store (postgres_uri.py for PostgreSQL URIs); access.py holds the store access modes (ACCESS_MODES) and what
each does to an SQLite or PostgreSQL store; checks.py, sqlite.py, postgres.py, links.py and schema.py look at a
store without changing it; walk.py, census.py and conversion.py read a directory store and convert it to SQLite
with MLflow's own migrate-filestore. Preflight (../preflight.py) is the only step that uses them all; the
server, the gate and the confinement rules take only the kinds table, names and URLs from here.
"""
