"""``python -m benchmarks``: run every workload for every system, side by side in one run.

Prints medians and cost ratios against the raw filesystem of the same family, checks
the targets of issue 6 (PASS/MISS), and writes ``bench-<preset>.json``,
``bench-<preset>.md`` and ``bench-<preset>.png`` (the scaling curves) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import attr

from . import report
from .systems import System, all_systems, baseline_system
from .workloads import PRESETS, Context, Workload, build_stack, not_applicable, takes_part, workloads

#: copy-ups move the most data: at most this many repeats (their disk noise wants several)
COPYUP_REPEATS = 5


@attr.s(slots=True)
class Result:
    workload: Workload = attr.ib()
    metric: str = attr.ib()
    unit: str = attr.ib()
    system: System = attr.ib()
    samples: List[float] = attr.ib(factory=list)
    note: str = attr.ib(default="")  # why there is no number

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.samples) if self.samples and not self.note else None

    @property
    def best(self) -> Optional[float]:
        """The best sample (least time, most throughput): the noise-robust supplement."""
        if not self.samples or self.note:
            return None
        return max(self.samples) if self.unit == "B/s" else min(self.samples)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_tools(install: bool) -> None:
    """Install what the run wants and lacks: matplotlib (the ``bench`` extra) and, as root
    with apt, the fuse-overlayfs and unionfs-fuse packages."""
    if not install:
        return
    if importlib.util.find_spec("matplotlib") is None:
        _log("installing matplotlib (the bench extra) ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib>=3.5"], check=False)
    missing = [package for package, binary in (("fuse-overlayfs", "fuse-overlayfs"), ("unionfs-fuse", "unionfs"))
               if shutil.which(binary) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        _log("installing %s with apt-get ..." % " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq"] + missing, env=env, check=False, capture_output=True)


def _groups(selected: List[Workload]) -> List[Tuple[str, List[Workload]]]:
    groups: Dict[str, List[Workload]] = {}
    for workload in selected:
        groups.setdefault(workload.stack, []).append(workload)
    return list(groups.items())


def run_all(preset: str, systems: List[System], scratch: str, only: List[str]) -> List[Result]:
    """Every workload for every system; repeats interleave the systems so drift hits all alike."""
    sizes = PRESETS[preset]
    selected = [w for w in workloads(sizes) if not only or any(w.name.startswith(prefix) for prefix in only)]
    results: List[Result] = []
    for key, group in _groups(selected):
        started = time.perf_counter()
        stack = build_stack(key, sizes, tempfile.mkdtemp(prefix=key.replace("@", "-") + "-", dir=scratch))
        os.sync()  # the data set's writeback does not compete with the timings
        _log("data set %-14s built in %.1fs" % (key, time.perf_counter() - started))
        try:
            for workload in group:
                started = time.perf_counter()
                results += _run_workload(workload, systems, stack, sizes)
                _log("  %-22s %.1fs" % (workload.name, time.perf_counter() - started))
        finally:
            stack.close()
        gc.collect()
    return results


def _run_workload(workload: Workload, systems: List[System], stack, sizes) -> List[Result]:
    taking_part = [system for system in systems if takes_part(workload, system)]
    rows = {(system.name, metric): Result(workload, metric, unit, system)
            for system in taking_part for metric, unit in workload.metrics}
    for system in taking_part:
        reason = system.unavailable or not_applicable(workload, system)
        for metric, _ in workload.metrics:
            rows[system.name, metric].note = reason
    repeats = min(sizes.repeats, COPYUP_REPEATS) if workload.in_subprocess else sizes.repeats
    if workload.max_repeats is not None:
        repeats = min(repeats, workload.max_repeats)
    # one context per system: mutating workloads number their fresh names per system
    contexts = {system.name: Context(sizes, stack) for system in taking_part}
    for repeat in range(repeats):
        shift = repeat % max(len(taking_part), 1)  # rotate the order: no system always goes first
        for system in taking_part[shift:] + taking_part[:shift]:
            if rows[system.name, workload.metrics[0][0]].note:
                continue
            try:
                values = _run_once(workload, system, contexts[system.name])
            except (OSError, RuntimeError, AssertionError, Exception) as error:  # noqa: B014 - report, go on
                note = "n/a: %s: %s" % (type(error).__name__, str(error).splitlines()[0][:120] if str(error) else "")
                for metric, _ in workload.metrics:
                    rows[system.name, metric].note = note
                continue
            for metric, value in values.items():
                rows[system.name, metric].samples.append(value)
    return list(rows.values())


def _run_once(workload: Workload, system: System, ctx: Context) -> Dict[str, float]:
    ctx.round += 1
    if workload.in_subprocess or workload.own_view:  # warming up is a whole untimed run first
        if workload.warm and ctx.round == 1:
            workload.run(None, ctx, system=system)  # type: ignore[call-arg]
        return workload.run(None, ctx, system=system)  # type: ignore[call-arg]
    with system.view(ctx.stack) as view:
        if not workload.warm:
            return workload.run(view, ctx)
        workload.run(view, ctx)  # fills the caches, untimed
        passes = []
        for _ in range(workload.passes):
            ctx.round += 1
            passes.append(workload.run(view, ctx))
        return {metric: min(values[metric] for values in passes) for metric in passes[0]}


def _machine() -> Dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="preset", action="store_const", const="quick",
                      help="smaller data sets (a few minutes)")
    size.add_argument("--toy", dest="preset", action="store_const", const="toy",
                      help="toy sizes: checks the harness works, the numbers mean nothing")
    parser.set_defaults(preset="full")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                        help="directory for the JSON, Markdown and PNG reports (default: benchmarks/results)")
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="run only workloads whose name starts with PREFIX (repeatable)")
    parser.add_argument("--systems", default="", help="comma-separated system names to run (default: all)")
    parser.add_argument("--no-install", action="store_true", help="do not pip/apt-install missing tools")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--scratch-dir", default="/var/tmp" if os.path.isdir("/var/tmp") else None,
                        help="where the data sets are written (needs ~3 GiB for the full preset)")
    parser.add_argument("--baseline", default="", metavar="REV",
                        help="also run unionfs as of git REV (system unionfs@base[os]): before and after in one run")
    args = parser.parse_args(argv)

    ensure_tools(not args.no_install)
    scratch = tempfile.mkdtemp(prefix="unionfs-bench-", dir=args.scratch_dir)
    started = time.perf_counter()
    try:
        systems = all_systems(scratch)
        if args.systems:
            wanted = set(args.systems.split(","))
            systems = [system for system in systems if system.name in wanted]
        if args.baseline:
            position = next((i + 1 for i, system in enumerate(systems) if system.name == "unionfs[os]"), len(systems))
            systems.insert(position, baseline_system(args.baseline, scratch))
        for system in systems:
            if system.unavailable:
                _log("system %s unavailable: %s" % (system.name, system.unavailable))
        results = run_all(args.preset, systems, scratch, args.only)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    command = "python -m benchmarks" + {"full": "", "quick": " --quick", "toy": " --toy"}[args.preset]
    meta = dict(_machine(), preset=args.preset, sizes=attr.asdict(PRESETS[args.preset]), command=command,
                seconds=round(elapsed, 1))
    targets = report.targets(results)
    text = report.markdown(results, targets, meta, systems)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "bench-%s" % args.preset)
    with open(base + ".json", "w") as out:
        json.dump(report.as_json(results, targets, meta, systems), out, indent=1)
    with open(base + ".md", "w") as out:
        out.write(text)
    written = [base + ".json", base + ".md"]
    if not args.no_plot and report.plot(results, base + ".png"):
        written.append(base + ".png")
    _log("wrote " + ", ".join(written) + " (%.0fs)" % elapsed)
    return 0
