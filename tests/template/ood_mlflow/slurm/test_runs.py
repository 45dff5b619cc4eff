"""Which runs link to which Slurm jobs, squeue's and sacct's answers, and what the card says (pure).

The sacct lines are the shapes `sacct --parsable2 --noheader --allocations
--format=JobID,JobIDRaw,State,End,ExitCode` prints (Slurm 22.05's sacct man page
and output): an array task's JobID is 12346_7 and its JobIDRaw the task's own
job id; a cancelled job's State is "CANCELLED by <uid>"; a job still running
ends "Unknown"; a pending array shows one line for its pending tasks. The test
bed has no accounting (slurmdbd), so this is the only test of the sacct path.
"""

from __future__ import annotations

import time

import pytest

from ood_mlflow.slurm import runs as sr

SACCT = """\
12345|12345|COMPLETED|2026-12-01T10:00:00|0:0
12346_7|12353|TIMEOUT|2026-12-01T11:00:00|0:0
12347|12347|CANCELLED by 1001|2026-12-01T12:00:00|0:15
12348|12348|OUT_OF_MEMORY|2026-12-01T12:30:00|0:125
12349|12349|RUNNING|Unknown|0:0
12350_[3-5%2]|12350|PENDING|Unknown|0:0
12351|12351|NODE_FAIL|2026-12-01T13:00:00|1:0
"""
# squeue --noheader --states=all --format=%i|%A|%T|%e, as the test bed's Slurm 22.05 prints it.
SQUEUE = """\
58_2|60|TIMEOUT|2026-12-02T05:44:06
61|61|RUNNING|2026-12-02T06:44:06
62|62|CANCELLED|2026-12-02T05:50:00
63_[4-6]|63|PENDING|N/A
"""


def local_ms(text):
    return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) * 1000)


def test_a_run_links_to_its_tag_first_then_to_a_name_that_is_a_job_id():
    assert sr.job_id_of("resnet", {"slurm.job_id": "12345_7"}) == "12345_7"
    assert sr.job_id_of("99", {"slurm.job_id": " 12345 "}) == "12345"
    assert sr.job_id_of("12345", {}) == "12345"
    assert sr.job_id_of("12345_7", {}) == "12345_7"
    assert sr.job_id_of("job-12345", {}) == "12345"  # the user guide's earlier run names
    for name, tags in [("resnet", {}), ("job-local", {}), ("12345-b", {}), ("", {"slurm.job_id": "--help"}),
                       (None, {"slurm.job_id": "12 345"})]:
        assert sr.job_id_of(name, tags) == "", (name, tags)


def test_only_job_ids_reach_a_slurm_command_line():
    assert sr.valid_job_ids(["1", "2_3", "1"]) == ["1", "2_3"]
    for bad in (["--format=%u"], ["1,2"], ["1;id"], "1", [1]):
        with pytest.raises(ValueError):
            sr.valid_job_ids(bad)
    argv = sr.sacct_argv(["1", "2_3"])
    assert argv[0] == "sacct" and "--parsable2" in argv and argv[-1] == "--jobs=1,2_3"


def test_sacct_gives_state_end_and_exit_code_under_both_ids_of_an_array_task():
    found = sr.parse_sacct(SACCT)
    assert found["12346_7"] == found["12353"] == sr.JobEnd("TIMEOUT", local_ms("2026-12-01T11:00:00"), "0:0")
    assert found["12347"] == sr.JobEnd("CANCELLED", local_ms("2026-12-01T12:00:00"), "0:15")
    assert found["12349"] == sr.JobEnd("RUNNING", 0, "0:0")
    assert found["12350_4"].state == "PENDING" and "12350_6" not in found
    assert found["12351"].exit_code == "1:0"


def test_squeue_lines_and_a_pending_array():
    found = sr.parse_squeue(SQUEUE)
    assert found["58_2"] == found["60"] == sr.JobEnd("TIMEOUT", local_ms("2026-12-02T05:44:06"))
    assert found["61"].state == "RUNNING"
    assert {found[f"63_{task}"].state for task in (4, 5, 6)} == {"PENDING"}
    assert sr.squeue_unknown_only(1, "slurm_load_jobs error: Invalid job id specified\n")
    assert not sr.squeue_unknown_only(1, "slurm_load_jobs error: Unable to contact slurm controller")


def runs(*job_ids):
    return [sr.Run(f"r{job_id}", f"name-{job_id}", job_id) for job_id in job_ids]


def test_squeue_first_then_sacct_and_live_or_unknown_states_stay_running():
    squeue = sr.parse_squeue(SQUEUE)
    sacct = sr.parse_sacct(SACCT + "12360|12360|SOME_NEW_STATE|2026-12-01T13:00:00|0:0\n")
    ended = sr.ended_runs(runs("60", "61", "63_5", "12347", "12348", "12349", "12351", "12360", "777"), squeue, sacct)
    assert [(e.run.job_id, e.job.state, e.status) for e in ended] == [
        ("60", "TIMEOUT", "KILLED"), ("12347", "CANCELLED", "KILLED"), ("12348", "OUT_OF_MEMORY", "FAILED"),
        ("12351", "NODE_FAIL", "FAILED")]  # 777: with accounting, a job sacct does not know is left alone


def test_without_accounting_a_job_slurm_no_longer_knows_has_ended():
    ended = sr.ended_runs(runs("61", "777"), sr.parse_squeue(SQUEUE), None)
    assert [(e.run.job_id, e.job.state, e.job.end_ms, e.status) for e in ended] == [("777", sr.GONE, 0, "KILLED")]


def test_the_card_counts_by_state_and_names_the_runs():
    ended = sr.ended_runs(runs("60", "62", "64", "65"), sr.parse_squeue(SQUEUE + "64|64|TIMEOUT|N/A\n"), {})
    assert [e.run.job_id for e in ended] == ["60", "62", "64"]
    text = sr.summary(ended, limit=2)
    assert text.startswith("3 runs are RUNNING in MLflow, but their Slurm jobs have ended: 2 TIMEOUT, 1 CANCELLED. ")
    assert "name-60 (job 60), name-62 (job 62) and 1 more (output.log lists them all)." in text
    one = sr.summary(ended[:1])
    assert one == "1 run is RUNNING in MLflow, but its Slurm job has ended: 1 TIMEOUT. name-60 (job 60)."
    assert "KILLED" in sr.action(closed=False) and "Read and write" in sr.action(closed=False)
    assert sr.action(closed=True).startswith("This session closed them")


@pytest.mark.parametrize("values,mode", [
    ({}, "report"),
    ({"close_slurm_runs": "1"}, "close"),
    ({"close_slurm_runs": "1", "store_access": "read_only"}, "report"),  # a read-only session never writes
    ({"close_slurm_runs": "1", "store_access": "upgrade"}, "report"),
    ({"close_slurm_runs": "1", "store_access": "convert"}, "report"),
    ({"close_slurm_runs": "0"}, "report"),
    ({"close_slurm_runs": "1", "slurm_runs_enabled": False}, "off"),
])
def test_closing_only_when_asked_in_a_read_and_write_session(values, mode):
    from ood_mlflow import settings
    from ood_mlflow.preflight import slurm_runs_mode

    assert slurm_runs_mode(settings.Settings.from_dict(dict({"tracking_uri": "/x"}, **values))) == mode
