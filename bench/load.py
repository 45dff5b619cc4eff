"""The sessions under load, through the OOD-like proxy: a script that prints numbers, not a timed test.

    sudo bin/bench --load [--runs 300] [--clients 8] [--rounds 25] [--artifact-mb 256] [--cores 1] [--mlflow 3]
    sudo bin/bench --soak MINUTES [--launch one-import] [--runs 300] [--mlflow 3]

--load starts the naive `mlflow server` launch, the app (one-import) and the app through the CLI, one after
the other on the same SQLite store, and sends each `--clients` clients that search runs (100 at a time) and
read a metric's history `--rounds` times, while one more downloads a large artifact. It reports p50/p95 and
failures, the artifact's speed and whether it arrived whole, and the job's memory (PSS and RSS of all its
processes) once ready, at the peak under load, and after. Each job runs on the cores it asks for (--cores,
at most the machine's), as Slurm's cgroups give them; with --cores 4 the sessions ask for 4
(SLURM_CPUS_PER_TASK): the app forks its web workers, the CLI starts its own.

--soak keeps a browser-like load (4 clients: experiments, runs, histories, artifact lists, with pauses)
on one launch and prints its memory every minute, so a leak shows as a slope.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from devportal.jobs import LocalJob
from devportal.ood import stage
from devportal.testbed import OWNER, own_tree

SEARCH = "/ajax-api/2.0/mlflow/runs/search"
EXPERIMENTS = "/ajax-api/2.0/mlflow/experiments/search?max_results=50"
CHUNK = 1 << 20


def memory_mb(job) -> tuple:
    """(PSS, RSS) in MB of all the job's processes: PSS counts pages forked workers share once."""
    pss = rss = 0
    for pid in job.process_commands():
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                pss += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
            with open(f"/proc/{pid}/status") as fh:
                rss += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return round(pss / 1024, 1), round(rss / 1024, 1)


class Peak:
    """The highest PSS and RSS of the job, sampled in the background while a load runs."""

    def __init__(self, job, every: float = 0.5):
        self.job, self.every, self.pss, self.rss = job, every, 0.0, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.is_set():
            pss, rss = memory_mb(self.job)
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@contextmanager
def session(label, app_root, store, env, apache, proxy_type, access="write", cpus=frozenset()):
    """A launch, ready and logged in: (job, proxy, experiment id, seconds until the card turned Running)."""
    job = LocalJob(stage({"mlflow_tracking_uri": store, "mlflow_store_access": access}, user=OWNER, env=env,
                         app_root=app_root))
    job.cpus = cpus
    job.start()
    try:
        info = job.wait_running(timeout=900)
        card = time.monotonic() - job.started
        proxy = proxy_type(apache, info)
        if label != "naive":
            _, cookie, _ = proxy.call("POST", "/login", f"password={info['password']}")
            proxy.cookie = cookie.split(";")[0]
        experiments = json.loads(proxy.call("GET", EXPERIMENTS)[2])["experiments"]
        experiment = next(e["experiment_id"] for e in experiments if e["name"] == "demo-classifier")
        yield job, proxy, experiment, card
    finally:
        job.cancel()


def search_body(experiment: str) -> str:
    return json.dumps({"experiment_ids": [experiment], "max_results": 100,
                       "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"})


def timed_call(proxy, method, path, body=None) -> tuple:
    """(ms, answered 200, body); a refused connection or a timeout counts as a failure, not a crash."""
    start = time.perf_counter()
    try:
        status, _, data = proxy.call(method, path, body)
    except OSError:
        status, data = 0, b""
    return (time.perf_counter() - start) * 1000, status == 200, data


def history_path(run: dict) -> str:
    key = run["data"]["metrics"][0]["key"]
    return f"/ajax-api/2.0/mlflow/metrics/get-history?run_id={run['info']['run_id']}&metric_key={key}"


def client_rounds(proxy, experiment: str, rounds: int, samples: dict) -> None:
    body = search_body(experiment)
    for _ in range(rounds):
        ms, ok, data = timed_call(proxy, "POST", SEARCH, body)
        samples["search"].append((ms, ok))
        runs = json.loads(data).get("runs", []) if ok else []
        if runs:
            ms, ok, _ = timed_call(proxy, "GET", history_path(random.choice(runs)))
            samples["history"].append((ms, ok))


def big_artifact(proxy, experiment: str, size_mb: int) -> tuple:
    """(run id, artifact name, sha256) of a file of `size_mb` MiB in the newest run's artifacts, made once."""
    _, _, data = timed_call(proxy, "POST", SEARCH, search_body(experiment))
    run = json.loads(data)["runs"][0]["info"]
    folder = Path(run["artifact_uri"].removeprefix("file://"))
    name = f"big-{size_mb}mib.bin"
    target = folder / name
    if not target.exists() or target.stat().st_size != size_mb * CHUNK:
        folder.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(CHUNK))
        own_tree(folder, OWNER)
    digest = hashlib.sha256()
    with open(target, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return run["run_id"], name, digest.hexdigest()


def download(apache, base: str, cookie: str, run_id: str, name: str) -> tuple:
    """(MB/s, bytes, sha256) of get-artifact through the proxy, read in chunks as a browser would."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", apache.port, timeout=300)
    headers = {"Host": apache.host_header, "Origin": apache.origin}
    if cookie:
        headers["Cookie"] = cookie
    start, digest, size = time.perf_counter(), hashlib.sha256(), 0
    try:
        conn.request("GET", f"{base}/get-artifact?path={name}&run_uuid={run_id}", headers=headers)
        response = conn.getresponse()
        for block in iter(lambda: response.read(CHUNK), b""):
            digest.update(block)
            size += len(block)
    except OSError:
        pass
    finally:
        conn.close()
    return size / (1 << 20) / (time.perf_counter() - start), size, digest.hexdigest()


def percentiles(samples: list) -> dict:
    times = sorted(ms for ms, _ in samples)
    if not times:
        return {"p50": 0.0, "p95": 0.0, "count": 0, "failed": 0}
    return {"p50": statistics.median(times), "p95": times[max(0, round(0.95 * len(times)) - 1)],
            "count": len(times), "failed": sum(not ok for _, ok in samples)}


def job_cpus(cores: int) -> frozenset:
    """The CPUs a session of `cores` gets: the highest-numbered ones (the proxy and the clients share them all)."""
    mine = sorted(os.sched_getaffinity(0))
    return frozenset(mine[-min(cores, len(mine)):])


def load(label, launch, store, apache, proxy_type, clients: int, rounds: int, artifact_mb: int, cores: int) -> dict:
    app_root, env = launch
    with session(label, app_root, store, env, apache, proxy_type, cpus=job_cpus(cores)) as (job, proxy, experiment, _):
        run_id, name, digest = big_artifact(proxy, experiment, artifact_mb)
        time.sleep(2)  # workers and job runners finish starting
        ready = memory_mb(job)
        alone, size, got = download(apache, proxy.base, proxy.cookie, run_id, name)
        alone_whole = size == artifact_mb * CHUNK and got == digest
        samples = {"search": [], "history": []}
        with Peak(job) as peak, ThreadPoolExecutor(clients + 1) as pool:
            artifact = pool.submit(download, apache, proxy.base, proxy.cookie, run_id, name)
            started = time.perf_counter()
            for waiting in [pool.submit(client_rounds, proxy, experiment, rounds, samples) for _ in range(clients)]:
                waiting.result()
            wall = time.perf_counter() - started
            speed, size, got = artifact.result()
        time.sleep(5)
        after = memory_mb(job)
        return {"search": percentiles(samples["search"]), "history": percentiles(samples["history"]),
                "wall_s": wall, "artifact": {"mb_per_s": speed, "alone_mb_per_s": alone,
                                                "whole": alone_whole and size == artifact_mb * CHUNK and got == digest},
                "memory_mb": {"ready": ready, "peak": (peak.pss, peak.rss), "after": after}}


def load_table(results: dict) -> str:
    lines = [f"MLflow {results['mlflow']}, {results['machine']}, SQLite store of {results['runs']} runs, "
             f"{results['clients']} clients x {results['rounds']} rounds (runs/search + get-history), "
             f"{results['artifact_mb']} MiB artifact at the same time, {results['cores']} core(s) asked for, "
             f"the job pinned to as many (at most the machine's)",
             "",
             "| launch | search p50 / p95 (ms) | history p50 / p95 (ms) | failed | wall (s) "
             "| artifact MB/s alone / under load, whole "
             "| PSS ready / peak / after (MB) | RSS ready / peak / after (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in results["launches"].items():
        m = r["memory_mb"]
        lines.append(
            f"| {label} | {r['search']['p50']:.0f} / {r['search']['p95']:.0f} | {r['history']['p50']:.0f} / "
            f"{r['history']['p95']:.0f} | {r['search']['failed'] + r['history']['failed']} of "
            f"{r['search']['count'] + r['history']['count']} | {r['wall_s']:.1f} | "
            f"{r['artifact']['alone_mb_per_s']:.0f} / {r['artifact']['mb_per_s']:.0f}, "
            f"{'yes' if r['artifact']['whole'] else 'NO'} | {m['ready'][0]:.0f} / {m['peak'][0]:.0f} / "
            f"{m['after'][0]:.0f} | {m['ready'][1]:.0f} / {m['peak'][1]:.0f} / {m['after'][1]:.0f} |")
    launches = results["launches"]
    for name, base in (("naive", "naive"), ("CLI", "cli")):
        if "one-import" in launches and base in launches:
            a, b = launches["one-import"], launches[base]
            lines.append(f"| **one-import / {name}** | **{a['search']['p50'] / b['search']['p50']:.2f}** | "
                         f"{a['history']['p50'] / b['history']['p50']:.2f} | | {a['wall_s'] / b['wall_s']:.2f} | | "
                         f"**{a['memory_mb']['peak'][0] / b['memory_mb']['peak'][0]:.2f}** (peak) | "
                         f"{a['memory_mb']['peak'][1] / b['memory_mb']['peak'][1]:.2f} (peak) |")
    return "\n".join(lines)


def browse(proxy, experiment: str, stop: threading.Event, samples: list) -> None:
    """What a researcher's tab does: the experiment list, the runs table, some charts, an artifact list."""
    body = search_body(experiment)
    while not stop.is_set():
        samples.append(timed_call(proxy, "GET", EXPERIMENTS)[:2])
        ms, ok, data = timed_call(proxy, "POST", SEARCH, body)
        samples.append((ms, ok))
        runs = json.loads(data).get("runs", []) if ok else []
        for run in random.sample(runs, min(3, len(runs))):
            samples.append(timed_call(proxy, "GET", history_path(run))[:2])
        if runs:
            samples.append(timed_call(proxy, "GET", "/ajax-api/2.0/mlflow/artifacts/list?run_uuid="
                                      f"{runs[0]['info']['run_id']}")[:2])
        stop.wait(random.uniform(0.2, 1.0))


def soak(label, launch, store, apache, proxy_type, minutes: int, cores: int, clients: int = 4) -> dict:
    app_root, env = launch
    with session(label, app_root, store, env, apache, proxy_type, cpus=job_cpus(cores)) as (job, proxy, experiment, _):
        stop, samples, rows = threading.Event(), [], []
        print(f"soak: {label}, {clients} browsing clients, {minutes} minutes", flush=True)
        print("| minute | requests | failed | p50 (ms) | PSS (MB) | RSS (MB) |\n|---|---|---|---|---|---|", flush=True)
        threads = [threading.Thread(target=browse, args=(proxy, experiment, stop, samples)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            for minute in range(1, minutes + 1):
                time.sleep(60)
                taken, samples[:] = list(samples), []
                pss, rss = memory_mb(job)
                row = {"minute": minute, **percentiles(taken), "pss_mb": pss, "rss_mb": rss}
                rows.append(row)
                print(f"| {minute} | {row['count']} | {row['failed']} | {row['p50']:.0f} | {pss:.0f} | {rss:.0f} |",
                      flush=True)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        after_warm_up = rows[1:] if len(rows) > 2 else rows
        slopes = {key: slope_mb_per_minute(after_warm_up, key) for key in ("pss_mb", "rss_mb")}
        # RSS is the job's own; PSS also moves when other processes on the node map the same libraries.
        print(f"Slope after the first minute: RSS {slopes['rss_mb']:+.2f} MB/minute, PSS {slopes['pss_mb']:+.2f} "
              f"MB/minute", flush=True)
        return {"rows": rows, "slope_mb_per_minute": slopes}


def slope_mb_per_minute(rows: list, key: str) -> float:
    """The least-squares slope of memory (`key`) over the minutes: near 0 when nothing leaks."""
    if len(rows) < 2:
        return 0.0
    xs, ys = [r["minute"] for r in rows], [r[key] for r in rows]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

