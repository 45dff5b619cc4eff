"""ood_mlflow: the part of the Open OnDemand MLflow app that runs in the job.

It is staged into the session directory with the rest of template/ and runs
with the Python of the user's chosen MLflow environment, so it uses only the
standard library and what MLflow itself installs.
"""

__version__ = "0.3.0"
