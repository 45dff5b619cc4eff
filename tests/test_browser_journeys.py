"""A researcher's journey in a real browser, through Slurm and the OOD-like proxy.

Chromium (as a non-root user) opens the session card on the portal, clicks
Connect, sees the experiments, opens one and its runs, a run's loss chart and
its text artifact, renames the experiment and sees the new name after a
reload. The matrix covers store kinds, both proxy prefixes and Dex (Host is
the portal's name) on MLflow 3.17.2, SQLite behind /rnode on MLflow 2.22, a
PostgreSQL store (the test bed's own server) behind /rnode on MLflow 3.17.2,
and SQLite on MLflow 3.17.2 from a container-style module
(devportal/container_env.py). Each journey starts on a fresh profile for the
portal's origin and checks the first screen; on MLflow 3.x, Start Demo is
refused with an explanation and writes nothing.
A screenshot of each step is saved under tests/artifacts/journeys/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from devportal import container_env
from devportal.apache import OodApache
from devportal.browser import Browser
from devportal.dashboard import make_docroot, publish_card, publish_form
from devportal.ood import render_form
from devportal.ports import free_port
from devportal.testbed import OWNER, make_store

SHOTS = Path(__file__).resolve().parent / "artifacts" / "journeys"
# (store kind, MLflow major, proxy, Dex, environment): "plain" is the test venv, "module" a container module's.
# Store kind x proxy x Dex on MLflow 3 as a pairwise covering set: each pair of values of any two of the three
# meets in a journey (proxy x Dex, where the portal's paths and Host meet, in all four ways), in 4 journeys of 8.
PAIRWISE = (("sqlite", "rnode", False), ("sqlite", "node", True), ("file", "rnode", True), ("file", "node", False))
MATRIX = [(kind, "3", proxy, dex, "plain") for kind, proxy, dex in PAIRWISE] + [
    ("sqlite", "2", "rnode", False, "plain"), ("postgresql", "3", "rnode", False, "plain"),
    ("sqlite", "3", "rnode", False, "module")]


def journey_name(kind, major, proxy, dex, env) -> str:
    return f"{kind}-mlflow{major}-{proxy}-{'dex' if dex else 'nodex'}" + ("" if env == "plain" else f"-{env}")


@pytest.fixture(scope="module")
def portals(tmp_path_factory):
    """One portal per Host setup: ProxyPreserveHost Off, and On as on Dex sites; both validate targets strictly."""
    docroot = make_docroot()
    # Strict targets, as OSC's newest mod_ood_proxy validates them: every URL the card, the gate and the UI
    # use must carry no encoded /, ?, # or % in its path (secure rnode).
    started = {dex: OodApache(tmp_path_factory.mktemp(f"apache-dex-{dex}"), free_port(), preserve_host=dex,
                              docroot=docroot, remote_user=OWNER, strict=True).start() for dex in (False, True)}
    yield started
    for apache in started.values():
        apache.stop()


@pytest.fixture(scope="module")
def browser(portals):
    with Browser(run_as=OWNER, insecure_origins=[a.origin for a in portals.values()]) as chromium:
        yield chromium


def shoot(browser, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(str(SHOTS / f"{name}.png"))


def click_exact_text(browser, text):
    """Items such as artifact names are plain elements, not links or buttons."""
    browser.wait_for(text=text)
    browser.driver.find_element(By.XPATH, f"//*[normalize-space(text())='{text}']").click()


def assert_nothing_covers(browser, text):
    """No pop-up, banner or side panel lies over the element showing `text` (the browser starts fresh)."""
    covered = browser.driver.execute_script(
        """const item = [...document.querySelectorAll('a, span, div')].find(e => e.textContent.trim() === arguments[0]);
        if (!item) return 'not found';
        const box = item.getBoundingClientRect();
        const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
        return item.contains(top) || (top && top.contains(item)) ? ''
            : (top ? top.outerHTML.slice(0, 200) : 'nothing');""",
        text)
    assert not covered, f"something covers {text!r}: {covered}"


def page_policy(browser) -> str:
    """The Content-Security-Policy the UI page is served with, as the browser receives it through the proxy.
    (WebDriver's own scripts are exempt from a page's policy, so they cannot probe it by trying eval.)"""
    return browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(location.href, {credentials: 'same-origin'})
          .then(r => done(r.headers.get('content-security-policy') || ''), e => done(String(e)));""")


def assert_first_screen(browser, major):
    """What a researcher sees first, on a fresh profile: the experiments, with nothing opened over them."""
    shown = browser.page_text()
    dialogs = browser.driver.execute_script(
        """return [...document.querySelectorAll('[role=dialog], [aria-modal=true], .ant-modal, .du-bois-light-modal')]
            .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
            .map(e => e.innerText.slice(0, 120));""")
    assert not dialogs, f"a dialog opened over the first screen: {dialogs}"
    assert_nothing_covers(browser, "demo-classifier")
    if major == "3":  # MLflow 3.x's home page opens on what the session offers
        assert "mlflow assistant" not in shown.lower(), \
            "the Assistant panel opened, for an assistant the session refuses"
        assert "Information about UI telemetry" not in shown, "a notice about telemetry the session switched off"
        assert "Start Demo" not in shown, "Start Demo would write sample experiments into the researcher's store"


def assert_start_demo_refused(browser, experiment):
    """Start Demo's request, sent as the UI sends it (a POST from its page): refused, explained, nothing written."""
    names = browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const search = () => fetch('ajax-api/2.0/mlflow/experiments/search?max_results=100',
                                   {credentials: 'same-origin'}).then(r => r.json())
                             .then(j => (j.experiments || []).map(e => e.name).sort());
        search().then(before => fetch('ajax-api/3.0/mlflow/demo/generate', {method: 'POST',
              credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: '{}'})
          .then(r => r.text().then(body => search().then(after => done([r.status, body, before, after])))))
          .catch(e => done(String(e)));""")
    status, body, before, after = names
    assert status == 403 and "Start Demo is switched off" in body, (status, body)
    assert experiment in before and before == after, f"the store's experiments changed: {before} -> {after}"
    browser.console_errors()  # the refusal's 403, expected here


def rename_experiment(browser, experiment_id, new_name):
    """A state-changing POST from the UI's page, with the browser's own Origin and cookie."""
    status = browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('ajax-api/2.0/mlflow/experiments/update', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json'}, body: arguments[0]})
          .then(r => done(r.status), e => done(String(e)));""",
        json.dumps({"experiment_id": experiment_id, "new_name": new_name}))
    assert status == 200, f"renaming through the UI's origin answered {status}"


@pytest.mark.slurm
@pytest.mark.browser
@pytest.mark.parametrize("kind,major,proxy,dex,env", MATRIX, ids=[journey_name(*row) for row in MATRIX])
def test_journey(request, launch, site_config, portals, browser, kind, major, proxy, dex, env):
    journey(launch, site_config, portals, browser, kind, major, proxy, dex, journey_name(kind, major, proxy, dex, env),
            postgres=request.getfixturevalue("postgres") if kind == "postgresql" else None, env=env)


@pytest.mark.slurm
@pytest.mark.browser
def test_convert_journey(launch, site_config, portals, browser):
    """A directory store converted to SQLite on the way: the same runs, chart and artifact from the new file."""
    journey(launch, site_config, portals, browser, "file", "3", "rnode", False, "file-mlflow3-convert",
            access="convert")


def journey(launch, site_config, portals, browser, kind, major, proxy, dex, name, access="write", postgres=None,
            env="plain"):
    site = {"environments": container_env.environments(major)} if env == "module" else {}
    if postgres:
        store = postgres.make_store(f"journey_mlflow{major}", major)
        site["artifact_roots"] = [str(postgres.artifacts_of(f"journey_mlflow{major}"))]  # a database has no folder
    else:
        store = make_store(kind, major, OWNER, name=f"-journey-{proxy}-{dex}-{access}-{env}")
    job = launch({"mlflow_tracking_uri": store, "mlflow_store_access": access},
                 site_config(major, proxy=proxy, **site), runner="slurm")
    info = job.wait_running(timeout=180)
    portal = portals[dex]
    base_url = portal.url(f"/{proxy}/{info['host']}/{info['port']}/")

    browser.open(portal.url(publish_card(job.session, portal.docroot, job.job_id)))
    browser.wait_for(text="Connect to MLflow")
    # A fresh profile for the portal's origin (earlier journeys' sessions shared it), except that an earlier
    # session left MLflow 3.x's UI on its GenAI view (localStorage is per origin).
    browser.driver.execute_script('localStorage.clear(); sessionStorage.clear();'
                                  'localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("genai"))')
    shoot(browser, f"{name}-1-card")
    browser.click(text="Connect to MLflow")
    browser.switch_to_newest_window()
    browser.wait_for(text="demo-classifier", timeout=60)
    assert browser.driver.current_url.startswith(base_url), browser.driver.current_url
    shoot(browser, f"{name}-2-experiments")
    assert_first_screen(browser, major)

    browser.click(text="demo-classifier")
    # The runs table first, without touching MLflow 3.x's view switch (the site's default_view).
    browser.wait_for(text="3 matching runs", timeout=60)  # the runs table is a POST
    assert_nothing_covers(browser, "run-00000")
    shoot(browser, f"{name}-3-runs")
    experiment_id = browser.driver.current_url.split("#/experiments/")[1].split("/")[0].split("?")[0]

    browser.click(text="run-00000")
    browser.wait_for(text="Parameters")
    browser.click(text="Model metrics")
    browser.wait_for(text="run-00000 (loss)", timeout=60)
    shoot(browser, f"{name}-4-loss-chart")

    browser.click(text="Artifacts")
    click_exact_text(browser, "notes.txt")
    browser.wait_for(text="Notes for run-00000: trained with lr=", timeout=60)
    shoot(browser, f"{name}-5-artifact")

    rename_experiment(browser, experiment_id, f"renamed-{name}")
    browser.open(base_url)  # the home page lists the experiments in 2.x and 3.x
    browser.driver.refresh()
    browser.wait_for(text=f"renamed-{name}", timeout=60)
    shoot(browser, f"{name}-6-renamed")
    errors = browser.console_errors()
    # The status Chrome reports, not a port number that happens to contain 401.
    refused = [e for e in errors if re.search(r"status of 40[13]\b", e.get("message", ""))]
    assert not refused, refused
    # The UI page runs under a policy, without 'unsafe-eval' where the UI works without it (MLflow 3.x), and
    # the UI did all of the above under it.
    blocked = [e for e in errors if "Content Security Policy" in e.get("message", "")]
    assert not blocked, f"the UI needs something its page policy refuses: {blocked}"
    policy = page_policy(browser)
    assert "script-src 'self'" in policy and "object-src 'none'" in policy, policy
    assert ("'unsafe-eval'" in policy) == (major == "2"), policy
    if major == "3":
        assert_start_demo_refused(browser, f"renamed-{name}")
    browser.driver.close()
    browser.driver.switch_to.window(browser.driver.window_handles[0])


@pytest.mark.browser
def test_form_page_explains_itself(site_config, portals, browser):
    env = site_config("3", partitions=["interactive", "small"],
                      environments=[{"label": "MLflow 3.17", "setup": ""}, {"label": "MLflow 2.22", "setup": ""}])
    portal = portals[False]
    browser.open(portal.url(publish_form(render_form(env), portal.docroot)))
    for text in ("MLflow tracking store", "mlflow.set_tracking_uri()", "Project (Slurm account)", "Partition",
                 "Advanced", "Store access", "MLflow version"):
        browser.wait_for(text=text)
    browser.fill("mlflow_tracking_uri", "/scratch/project_2001234/mlruns.db")
    browser.fill("bc_account", "project_2001234")
    shoot(browser, "form")
