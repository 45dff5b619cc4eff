"""Regenerate the README's pictures: `sudo bin/screenshots`.

A store at a realistic path (/scratch/project_2001234/mlruns.db, 20 runs of
a demo classifier with loss curves), a session launched through Slurm with
the resources a researcher would ask for, the emulated portal's form and
session card, and MLflow 3.17's UI through the OOD-like proxy: the runs table
with metric columns and a multi-run loss chart. Writes docs/images/*.png.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from devportal.apache import OodApache
from devportal.browser import Browser
from devportal.dashboard import make_docroot, publish_card, publish_form
from devportal.jobs import SlurmJob
from devportal.ood import APP_ROOT, render_form, stage
from devportal.ports import free_port
from devportal.testbed import OWNER, mlflow_python, own_tree, write_site_config

IMAGES = APP_ROOT / "docs" / "images"
PROJECT = "project_2001234"
SCRATCH = Path("/scratch") / PROJECT
STORE = SCRATCH / "mlruns.db"
FORM_VALUES = {"mlflow_tracking_uri": str(STORE), "bc_account": PROJECT, "bc_queue": "interactive",
               "bc_num_hours": "4", "mlflow_num_cores": "2", "mlflow_memory_gb": "8"}


def make_store() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    STORE.unlink(missing_ok=True)
    subprocess.run([str(mlflow_python("3")), str(APP_ROOT / "demo/make_store.py"), f"sqlite:///{STORE}",
                    "--runs", "20", "--steps", "30"], check=True, capture_output=True, cwd=SCRATCH, timeout=600)
    Path("/scratch").chmod(0o755)
    own_tree(SCRATCH, OWNER, 0o755)


def full_height(browser, width: int = 1400) -> None:
    """Size the window to the whole page, so a picture is not cut off."""
    height = browser.driver.execute_script("return document.documentElement.scrollHeight")
    browser.driver.set_window_size(width, height + 120)


def main() -> int:
    make_store()
    work = Path(tempfile.mkdtemp(prefix="ood-mlflow-shots-"))
    work.chmod(0o755)
    env = write_site_config(work / "site.yml", "3", partitions=["interactive", "small"],
                            environments=[{"label": "MLflow 3.17",
                                           "setup": f"source {mlflow_python('3').parent}/activate\n"}])
    session = stage(FORM_VALUES, user=OWNER, env=env)
    job = SlurmJob(session).start()
    try:
        info = job.wait_running(timeout=300)
        with OodApache(work / "apache", free_port(), docroot=make_docroot(), remote_user=OWNER) as apache, \
                Browser(run_as=OWNER, insecure_origins=[apache.origin]) as browser:
            browser.open(apache.url(publish_form(render_form(env), apache.docroot)))
            browser.wait_for(text="MLflow tracking store")
            browser.fill("mlflow_tracking_uri", str(STORE))
            browser.fill("bc_account", PROJECT)
            full_height(browser)
            browser.screenshot(str(IMAGES / "launch-form.png"))

            browser.driver.set_window_size(1400, 900)
            browser.open(apache.url(publish_card(session, apache.docroot, job.job_id)))
            browser.wait_for(text="Connect to MLflow")
            full_height(browser)
            browser.screenshot(str(IMAGES / "session-card.png"))

            browser.driver.set_window_size(2000, 900)  # wide enough for the params and metrics columns
            browser.click(text="Connect to MLflow")
            browser.switch_to_newest_window()
            browser.wait_for(text="demo-classifier", timeout=60)
            base = browser.driver.current_url.split("#")[0]
            runs = "#/experiments/1/runs?startTime=ALL&lifecycleFilter=Active&modelVersionFilter=All+Runs"
            browser.open(base + runs + "&orderByKey=metrics.%60loss%60&orderByAsc=true")
            browser.wait_for(text="20 matching runs", timeout=60)
            browser.click(text="Show more columns (8 total)")  # opens MLflow's column chooser
            for column in ("loss", "metric_1", "lr"):  # the chooser is the last thing on the page
                browser.driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{column}']")[-1].click()
            browser.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
            time.sleep(2)
            browser.screenshot(str(IMAGES / "mlflow-runs.png"))
            browser.driver.set_window_size(1400, 900)
            browser.open(base + runs + "&compareRunsMode=CHART")
            browser.wait_for(text="Model metrics", timeout=60)
            time.sleep(4)  # the charts draw after their data arrive
            browser.screenshot(str(IMAGES / "mlflow-loss-chart.png"))
        print(f"pictures written to {IMAGES} (session {info['host']}:{info['port']})")
        return 0
    finally:
        job.cancel()


if __name__ == "__main__":
    sys.exit(main())
