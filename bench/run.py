"""Benchmark the app against a naive `mlflow server` launch, both as portal sessions.

    sudo bin/bench                          # full size: SQLite 10,000 runs, directory 1,000 runs
    sudo bin/bench --sqlite-runs 200 --file-runs 50 --requests 10   # a quick run (CI)

It also converts a directory store (--convert-runs, default 10,000) with the
app's "Convert to SQLite" and reports the conversion's time and runs/search
through the proxy on the directory and on the converted file.

For each store three launches are compared: the naive one, the app's
one-import server (MLflow's web app in the job's own process) and the app
through the `mlflow server` CLI (its fallback, forced with OOD_MLFLOW_SERVER=cli
in the software environment). Each launch is staged and run through the portal
emulation (devportal) as the session's owner, on the same machine, one after
the other, and measured:
  card     seconds from the job's start to connection.yml (the card turns Running)
  ui       seconds from the job's start to the first runs search answered through the proxy
  rss      total RSS of the job's processes once ready (MB)
  GET/POST median and p95 ms of experiments/search and runs/search through the
           OOD-like Apache proxy, logged in where a login exists
With --repeat N every launch is made N times, in turn; start times and RSS are
the medians, request times are pooled.
The floor is `python -c "import mlflow.server"` in the same environment; start
times are also given as a ratio to it. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.make_stores import make
from devportal.apache import OodApache
from devportal.ood import APP_ROOT
from devportal.ports import free_port
from devportal.testbed import FORCE_CLI_SETUP, OWNER, mlflow_python, write_site_config

NAIVE_TEMPLATE = Path(__file__).resolve().parent / "naive_app" / "template"
LAUNCHES = ("naive", "one-import", "cli")  # the naive launch, the app's two server paths
TWO_WORKERS = "cli, 2 workers"  # --workers-check: the CLI with a 4-core session's workers (SLURM_CPUS_PER_TASK=4)
FORKED = "one-import, 2 workers"  # --workers-check: the app as a 4-core session runs it, workers forked


def naive_app_root(work: Path) -> Path:
    """The app's OOD files with the naive launch's template/ in place of ours."""
    root = work / "naive_app"
    root.mkdir()
    for name in ("manifest.yml", "form.yml.erb", "submit.yml.erb", "site.yml.example"):
        shutil.copy(APP_ROOT / name, root / name)
    shutil.copytree(APP_ROOT / "lib", root / "lib")
    shutil.copytree(NAIVE_TEMPLATE, root / "template")
    # The same software environment as the app's sessions.
    shutil.copy(APP_ROOT / "template" / "environment.sh.erb", root / "template")
    for path in [work, *root.rglob("*")] + [root]:
        path.chmod(0o755 if path.is_dir() else (path.stat().st_mode | 0o444))
    return root


def process_rss_mb(job) -> list:
    """(RSS in MB, command) of each process of the job."""
    found = []
    for pid, argv in job.process_commands().items():
        try:
            with open(f"/proc/{pid}/status") as fh:
                rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        found.append((round(rss / 1024, 1), " ".join(argv)[:120]))
    return sorted(found, reverse=True)


class Proxy:
    """Requests through the OOD-like Apache, as the browser sends them."""

    def __init__(self, apache, info):
        import http.client
        self.http = http.client
        self.apache, self.base = apache, f"/rnode/{info['host']}/{info['port']}"
        self.cookie = ""

    def call(self, method, path, body=None):
        headers = {"Host": self.apache.host_header, "Origin": self.apache.origin}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            headers["Content-Type"] = "application/json" if body.startswith("{") else \
                "application/x-www-form-urlencoded"
        conn = self.http.HTTPConnection("127.0.0.1", self.apache.port, timeout=120)
        try:
            conn.request(method, self.base + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.getheader("Set-Cookie", ""), data
        finally:
            conn.close()


def timed(proxy, method, path, body, count) -> list:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        status, _, _ = proxy.call(method, path, body)
        times.append((time.perf_counter() - start) * 1000)
        assert status == 200, f"{method} {path} answered {status}"
    return times


def concurrent_batch(proxy, body, count) -> tuple:
    """(wall-clock ms, answers other than 200) for `count` runs searches sent at once, as the UI sends
    several when a page opens. Counted, not asserted: MLflow 3.17's runs search re-imports
    mlflow.server.auth on every call (it fails without Flask-WTF), and a thread that comes in during
    another's import can get a 500 (AttributeError: ... no attribute 'auth_config'), on every path."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(lambda _: proxy.call("POST", "/ajax-api/2.0/mlflow/runs/search", body)[0],
                                 range(count)))
    return (time.perf_counter() - start) * 1000, sum(status != 200 for status in statuses)


def measure(label, app_root, store, env, apache, requests, access="write", concurrency=4) -> dict:
    from bench.load import memory_mb, search_body, session

    with session(label, app_root, store, env, apache, Proxy, access) as (job, proxy, experiment, card):
        search = search_body(experiment)
        status, _, _ = proxy.call("POST", "/ajax-api/2.0/mlflow/runs/search", search)
        assert status == 200, f"{label}: runs/search answered {status}"
        ui = time.monotonic() - job.started
        time.sleep(2)  # let workers and job runners finish starting before RSS is read
        processes = process_rss_mb(job)
        pss = memory_mb(job)[0]  # forked workers share pages: RSS counts them once per worker, PSS once
        get = timed(proxy, "GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=25", None, requests)
        post = timed(proxy, "POST", "/ajax-api/2.0/mlflow/runs/search", search, requests)
        batches = [concurrent_batch(proxy, search, concurrency) for _ in range(3)] if concurrency else [(0.0, 0)]
        after = process_rss_mb(job)
        return {"card_s": card, "ui_s": ui, "rss_mb": sum(r for r, _ in processes), "pss_mb": pss,
                "processes": processes,
                "rss_after_requests_mb": sum(r for r, _ in after),
                "get_ms": percentiles(get), "post_ms": percentiles(post), "get_ms_samples": get,
                "post_ms_samples": post, "concurrent_ms": statistics.median(ms for ms, _ in batches),
                "concurrent_failed": sum(failed for _, failed in batches)}


def conversion(store: str, env, apache, requests) -> dict:
    """The app on a directory store, then converting it and serving the SQLite file (removed afterwards)."""
    directory = measure("one-import", APP_ROOT, store, env, apache, requests)
    converted = Path(store + ".db")
    converted.unlink(missing_ok=True)
    try:
        after = measure("one-import", APP_ROOT, store, env, apache, requests, access="convert")
    finally:
        converted.unlink(missing_ok=True)
    return {"directory": directory, "converted": after}


def conversion_table(name: str, result: dict) -> str:
    directory, converted = result["directory"], result["converted"]
    return "\n".join([
        "| store | card (s) | runs/search median / p95 (ms) |", "|---|---|---|",
        f"| {name}, as a directory | {directory['card_s']:.1f} | {directory['post_ms']['median']:.1f} / "
        f"{directory['post_ms']['p95']:.1f} |",
        f"| {name}, Convert to SQLite (card time includes the conversion) | {converted['card_s']:.1f} | "
        f"{converted['post_ms']['median']:.1f} / {converted['post_ms']['p95']:.1f} |"])


def combine(runs: list) -> dict:
    """Medians of the launches' start times and RSS; request times pooled over all launches."""
    merged = {key: statistics.median(r[key] for r in runs) for key in ("card_s", "ui_s", "rss_mb", "pss_mb",
                                                                        "rss_after_requests_mb", "concurrent_ms")}
    for key in ("get_ms", "post_ms"):
        merged[key] = percentiles([t for r in runs for t in r[key + "_samples"]])
    merged["launches"] = [{k: v for k, v in r.items() if not k.endswith("_samples")} for r in runs]
    return merged


def percentiles(samples) -> dict:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)]}


def import_floor(major: str, samples: int = 5) -> float:
    """The median of `samples` imports of mlflow.server as the sessions' owner (one sample is noisy)."""
    python = str(mlflow_python(major))
    subprocess.run([python, "-c", "import mlflow.server"], check=True, capture_output=True)  # warm the cache
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(["runuser", "-u", OWNER, "--", python, "-c", "import mlflow.server"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ratios(launch: dict, base: dict) -> dict:
    return {"card_s": launch["card_s"] / base["card_s"], "ui_s": launch["ui_s"] / base["ui_s"],
            "rss_mb": launch["rss_mb"] / base["rss_mb"], "pss_mb": launch["pss_mb"] / base["pss_mb"],
            "get_median": launch["get_ms"]["median"] / base["get_ms"]["median"],
            "post_median": launch["post_ms"]["median"] / base["post_ms"]["median"],
            "concurrent": launch["concurrent_ms"] / base["concurrent_ms"] if base["concurrent_ms"] else 0.0}


RATIOS = (("one-import / naive", "one-import", "naive"), ("CLI / naive", "cli", "naive"),
          ("one-import / CLI", "one-import", "cli"))


def table(results: dict, floor: float) -> str:
    lines = [
        f"MLflow {results['mlflow']}, {results['machine']}, {results['repeat']} launches of each kind per store, "
        f"{results['requests']} requests each; floor `import mlflow.server` = {floor:.2f} s",
        "",
        "| store | launch | card (s) | UI (s) | card / floor | RSS / PSS (MB) | GET median / p95 (ms) "
        "| POST median / p95 (ms) "
        f"| {results['concurrency']} POSTs at once (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for store, runs in results["stores"].items():
        for label in [label for label in runs if label != "ratios"]:
            r = runs[label]
            lines.append(f"| {store} | {label} | {r['card_s']:.1f} | {r['ui_s']:.1f} | {r['card_s'] / floor:.2f} | "
                         f"{r['rss_mb']:.0f} / {r['pss_mb']:.0f} | "
                         f"{r['get_ms']['median']:.1f} / {r['get_ms']['p95']:.1f} | "
                         f"{r['post_ms']['median']:.1f} / {r['post_ms']['p95']:.1f} | {r['concurrent_ms']:.0f} |")
        for name, ratio in runs["ratios"].items():
            lines.append(f"| {store} | **{name}** | **{ratio['card_s']:.2f}** | {ratio['ui_s']:.2f} | | "
                         f"**{ratio['rss_mb']:.2f}** / {ratio['pss_mb']:.2f} | **{ratio['get_median']:.2f}** | "
                         f"**{ratio['post_median']:.2f}** "
                         f"| {ratio['concurrent']:.2f} |")
    failed = {f"{store}, {label}": sum(r["concurrent_failed"] for r in runs[label]["launches"])
              for store, runs in results["stores"].items() for label in runs if label != "ratios"}
    if any(failed.values()):
        lines += ["", "Runs searches sent at once that failed: " + ", ".join(
            f"{name}: {count}" for name, count in failed.items() if count)]
    lines += ["", "Targets: one-import card / floor <= 1.2, one-import / CLI RSS <= 0.55 and request medians "
                  "<= 1.05; app / naive card <= 0.5, RSS <= 0.3."]
    return "\n".join(lines)


RESULTS = Path(__file__).resolve().parent


def work_folder() -> Path:
    work = Path(tempfile.mkdtemp(prefix="ood-mlflow-bench-"))
    work.chmod(0o755)
    return work


def launch_setups(work: Path, major: str, cores: int = 1) -> dict:
    """{launch: (app root, dashboard env)}: the naive launch, the app, the app forced onto the CLI."""
    cores_setup = f"export SLURM_CPUS_PER_TASK={cores}\n" if cores > 1 else ""
    env = write_site_config(work / f"site-{cores}.yml", major, cores_setup, start_timeout=900)
    cli_env = write_site_config(work / f"site-cli-{cores}.yml", major, FORCE_CLI_SETUP + cores_setup,
                                start_timeout=900)
    naive = work / "naive_app"
    return {"naive": (naive if naive.exists() else naive_app_root(work), env), "one-import": (APP_ROOT, env),
            "cli": (APP_ROOT, cli_env)}


def under_load(args) -> None:
    """--load or --soak: bench/load.py against the launches on one SQLite store."""
    from bench import load

    store = make("sqlite", args.runs, args.mlflow)
    work = work_folder()
    launches = launch_setups(work, args.mlflow, args.cores)
    version = mlflow_version(args.mlflow)
    with OodApache(work / "apache", free_port()) as apache:
        if args.soak:
            found = load.soak(args.launch, launches[args.launch], store, apache, Proxy, args.soak, args.cores)
            results = {"mlflow": version, "launch": args.launch, "minutes": args.soak, **found}
            name = "results-soak.json"
        else:
            results = {"mlflow": version, "machine": machine(), "runs": args.runs, "clients": args.clients,
                       "rounds": args.rounds, "artifact_mb": args.artifact_mb, "cores": args.cores,
                       "launches": {label: load.load(label, launches[label], store, apache, Proxy, args.clients,
                                                     args.rounds, args.artifact_mb, args.cores)
                                    for label in LAUNCHES}}
            print(load.load_table(results))
            name = f"results-load-mlflow{args.mlflow}-{args.cores}-cores.json"
    target = Path(args.json or RESULTS / name)
    target.write_text(json.dumps(results, indent=2))
    print(f"\nJSON: {target}")


def mlflow_version(major: str) -> str:
    return subprocess.run([str(mlflow_python(major)), "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def machine() -> str:
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-runs", type=int, default=10000)
    parser.add_argument("--file-runs", type=int, default=1000)
    parser.add_argument("--convert-runs", type=int, default=10000, help="directory store to convert; 0: none")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="launches of each kind per store")
    parser.add_argument("--mlflow", choices=["3", "2"], default="3")
    parser.add_argument("--concurrency", type=int, default=4, help="runs searches sent at once (0: none)")
    parser.add_argument("--workers-check", action="store_true",
                        help=f"also launch '{FORKED}' and '{TWO_WORKERS}' (a 4-core session's workers)")
    parser.add_argument("--json", default=None, help="where to write the results (default: bench/results*.json)")
    loads = parser.add_argument_group("load and soak (bench/load.py)")
    loads.add_argument("--load", action="store_true", help="clients at once and a large artifact, per launch")
    loads.add_argument("--soak", type=int, metavar="MINUTES", help="a browser-like load, memory every minute")
    loads.add_argument("--runs", type=int, default=300, help="runs in the SQLite store the load is sent to")
    loads.add_argument("--clients", type=int, default=8)
    loads.add_argument("--rounds", type=int, default=25)
    loads.add_argument("--artifact-mb", type=int, default=256)
    loads.add_argument("--cores", type=int, default=1, help="cores the sessions ask for (4: forked workers)")
    loads.add_argument("--launch", choices=LAUNCHES, default="one-import", help="the launch --soak runs")
    args = parser.parse_args(argv)
    if args.load or args.soak:
        return under_load(args)
    args.json = args.json or str(RESULTS / "results.json")

    stores = {f"SQLite, {args.sqlite_runs} runs": make("sqlite", args.sqlite_runs, args.mlflow),
              f"directory, {args.file_runs} runs": make("file", args.file_runs, args.mlflow)}
    work = work_folder()
    launches = launch_setups(work, args.mlflow)
    four_cores = launch_setups(work, args.mlflow, cores=4)
    launches[TWO_WORKERS], launches[FORKED] = four_cores["cli"], four_cores["one-import"]
    env = launches["one-import"][1]
    floor = import_floor(args.mlflow)
    results = {"mlflow": mlflow_version(args.mlflow), "machine": machine(),
               "floor_s": floor, "requests": args.requests, "repeat": args.repeat, "concurrency": args.concurrency,
               "stores": {}}
    with OodApache(work / "apache", free_port()) as apache:
        labels = LAUNCHES + ((FORKED, TWO_WORKERS) if args.workers_check else ())
        pairs = RATIOS + ((f"{FORKED} / {TWO_WORKERS}", FORKED, TWO_WORKERS),
                          (f"{FORKED} / one-import", FORKED, "one-import")) if args.workers_check else RATIOS
        for name, store in stores.items():
            samples = {label: [] for label in labels}
            for _ in range(args.repeat):
                for label in labels:
                    root, site = launches[label]
                    samples[label].append(measure(label, root, store, site, apache, args.requests,
                                                  concurrency=args.concurrency))
            runs = {label: combine(found) for label, found in samples.items()}
            runs["ratios"] = {name: ratios(runs[a], runs[b]) for name, a, b in pairs}
            results["stores"][name] = runs
        if args.convert_runs:
            results["conversion"] = conversion(make("file", args.convert_runs, args.mlflow), env, apache,
                                               args.requests)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results, floor))
    if args.convert_runs:
        print("\n" + conversion_table(f"directory, {args.convert_runs} runs", results["conversion"]))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
