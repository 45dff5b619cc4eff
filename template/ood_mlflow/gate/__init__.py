"""The login gate: what stands between a request and MLflow in the session's web server.

A request's journey is written once, in pipeline.py; app.py holds the `ood-gate` entry point and the two thin
adapters that carry ASGI (MLflow 3.x) and WSGI (2.x) requests to it and back. The decisions it makes are
policy.py (login, owner, origin, the route rules of routes.py and its generated lists), ids.py and bodies.py
(IDs and JSON bodies, read as MLflow reads them by request_json.py), artifacts.py (artifact confinement) and
ui_view.py (the UI's index page); peers.py tells who owns a socket on the node.

Like everything the job runs, it uses only the standard library and what MLflow's environment has.
"""
