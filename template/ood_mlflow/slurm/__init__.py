"""Runs that MLflow shows RUNNING whose Slurm job has ended: found, shown on the card, closed if asked.

runs.py links runs to jobs and decides (pure); lookup.py asks squeue and sacct, in a helper process
started before the server confines itself; sweep.py runs in the server after MLflow's one import.
"""
