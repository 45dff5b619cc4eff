"""The benchmark's arithmetic and tables (bench/run.py), on launch records shaped as measure() returns them.

CI does not run the benchmark itself (it launches a dozen sessions; docs/performance.md says how to run it):
this keeps its medians, ratios and table honest and importable."""

from __future__ import annotations

from bench.run import RATIOS, combine, ratios, table


def launch(card_s, get_ms, post_ms, rss_mb, failed=0) -> dict:
    return {"card_s": card_s, "ui_s": card_s + 0.5, "rss_mb": rss_mb, "pss_mb": rss_mb * 0.8,
            "rss_after_requests_mb": rss_mb + 10, "processes": [(rss_mb, "python")], "get_ms_samples": get_ms,
            "post_ms_samples": post_ms, "concurrent_ms": 100.0, "concurrent_failed": failed}


def results() -> dict:
    runs = {"naive": combine([launch(16.0, [80, 90, 100], [800, 900], 2000), launch(18.0, [85], [850], 2200)]),
            "one-import": combine([launch(4.0, [10, 12, 14], [130, 140], 250), launch(4.4, [11], [135], 260)]),
            "cli": combine([launch(8.0, [11, 13, 15], [135, 145], 480, failed=2), launch(8.0, [12], [140], 500)])}
    runs["ratios"] = {name: ratios(runs[a], runs[b]) for name, a, b in RATIOS}
    return {"mlflow": "3.17.2", "machine": "x86_64, 2 cores", "repeat": 2, "requests": 3, "concurrency": 4,
            "stores": {"SQLite, 100 runs": runs}}


def test_launches_are_combined_by_their_medians_and_requests_pooled():
    merged = combine([launch(4.0, [10, 12, 14], [130], 250), launch(5.0, [11], [150], 270)])
    assert (merged["card_s"], merged["rss_mb"]) == (4.5, 260)
    assert merged["get_ms"]["median"] == 11.5 and merged["get_ms"]["p95"] == 14
    assert all(not key.endswith("_samples") for record in merged["launches"] for key in record)


def test_ratios_and_the_table_say_what_the_launches_measured():
    found = results()
    one_import = found["stores"]["SQLite, 100 runs"]["ratios"]["one-import / naive"]
    assert round(one_import["card_s"], 2) == round(4.2 / 17.0, 2)
    assert round(one_import["rss_mb"], 3) == round(255 / 2100, 3)
    text = table(found, floor=4.0)
    assert "| SQLite, 100 runs | one-import | 4.2 | 4.7 | 1.05 | 255 / 204 |" in text
    assert f"| SQLite, 100 runs | **one-import / naive** | **{4.2 / 17.0:.2f}** |" in text
    assert "Runs searches sent at once that failed: SQLite, 100 runs, cli: 2" in text
