"""Starting MLflow's web server for a session, in one of two ways.

adapters.py says which MLflow versions the one-import server is proven on and what `mlflow server` would
hand its web server; in_process.py does that in this process (one MLflow import), with prefork.py's
workers for 4+ cores and auth_stand_in.py where MLflow's basic-auth app cannot be imported. Any other
version runs MLflow's own CLI, whose command line cli.py writes. installed_mlflow.py reads what the chosen
environment offers, node_local.py the node's local disk, processes.py the node's /proc.
"""
