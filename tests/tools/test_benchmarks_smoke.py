"""The benchmark harness runs end to end at toy sizes and writes well-formed reports.

Only the shape of the results is checked, never a timing: speed is measured by
``python -m benchmarks`` itself, outside CI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = {"raw[mem]", "raw[os]", "multifs[mem]", "multifs[os]", "unionfs[mem]", "unionfs[os]", "kernel",
           "fuse-overlayfs", "unionfs-fuse"}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--toy", "--no-install", "--out", str(out),
         "--scratch-dir", str(tmp_path_factory.mktemp("scratch"))],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "bench-toy.json") as report:
        return out, json.load(report), done.stdout


def test_every_system_is_listed_and_unavailable_ones_say_why(toy_run):
    _, report, _ = toy_run
    assert {system["name"] for system in report["systems"]} == SYSTEMS
    for system in report["systems"]:
        assert isinstance(system["unavailable"], str)


def test_every_workload_ran_for_every_available_system(toy_run):
    _, report, _ = toy_run
    available = {s["name"] for s in report["systems"] if not s["unavailable"]}
    workloads = {row["workload"] for row in report["results"]}
    for expected in ("lookup.getinfo", "lookup.exists", "read.small", "read.large", "listdir.warm",
                     "scandir.warm", "walk.warm", "walk.cold", "write.new", "whiteouts", "copyup",
                     "usr.getinfo.cold", "usr.getinfo.warm", "usr.walk.cold", "usr.walkinfo.cold", "usr.whited.cold",
                     "many.getinfo.cold", "many.listdir.cold", "archive.commit"):
        assert expected in workloads
    assert any(w.startswith("lowers.warm@") for w in workloads)
    assert any(w.startswith("whiteouts@") for w in workloads)
    unionfs_rows = [row for row in report["results"] if row["system"].startswith("unionfs[")]
    assert unionfs_rows and all(not row["note"] for row in unionfs_rows), [r["note"] for r in unionfs_rows]
    for row in report["results"]:
        assert row["unit"] in ("s/op", "B/s", "MiB", "count", "B")
        if row["note"]:
            assert row["median"] is None
            continue
        assert row["system"] in available
        assert 1 <= len(row["samples"]) <= report["meta"]["sizes"]["repeats"]
        assert all(math.isfinite(value) and value >= 0 for value in row["samples"])
        assert min(row["samples"]) <= row["median"] <= max(row["samples"])
        if row["unit"] not in ("MiB", "count", "B") and row["system"].startswith("raw["):
            assert row["ratio_vs_raw"] == pytest.approx(1.0)


@pytest.mark.parametrize("workload", ["archive.commit", "archive.walkread"])
def test_a_targz_commit_or_walk_restarts_no_decompression(toy_run, workload):
    _, report, _ = toy_run
    rows = [row for row in report["results"] if row["workload"] == workload and row["metric"] == "restarts"
            and row["system"] == "unionfs[os]"]
    assert rows and rows[0]["samples"] and all(value == 0 for value in rows[0]["samples"])


def test_targets_have_a_verdict_and_the_table_shows_them(toy_run):
    out, report, stdout = toy_run
    assert report["targets"]
    for verdict in report["targets"]:
        assert verdict["status"] in ("PASS", "MISS", "N/A")
        assert (verdict["value"] is None) == (verdict["status"] == "N/A")
        assert verdict["status"] + " | " + verdict["target"] in stdout
    assert (out / "bench-toy.md").read_text() in stdout
    if find_spec("matplotlib") is not None:
        assert (out / "bench-toy.png").read_bytes().startswith(b"\x89PNG")


def test_the_cpu_ab_runs_every_workload_against_a_baseline_checkout():
    """``benchmarks.cpu_ab`` (the A/B the RESULTS.md numbers of issue 11 come from) runs each
    workload at toy size for raw, a baseline (HEAD, imported from ``git archive``) and this
    tree, and reports a positive time for each."""
    from benchmarks.cpu_ab import WORKLOADS

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cpu_ab", "--preset", "toy", "--repeat", "1", "--baseline", "HEAD"]
        + ["--only=%s" % name for name in sorted(WORKLOADS)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[2:]}
    assert sorted(rows) == sorted(WORKLOADS)
    for name, values in rows.items():
        assert len(values) == 6 and all(float(value) > 0 for value in values), (name, values)
