"""Turning results into tables, target verdicts, JSON and the plot of the scaling curves.

Ratios are *cost* ratios against the reference of the same run, so ``1.20`` means 20%
slower whatever the unit: time per op divided by the reference's, or the reference's
throughput divided by the system's. The reference is the raw system of the same family
(``raw[mem]`` for MemoryFS-backed systems, ``raw[os]`` for everything on disk); for
copy-up the raw system runs ``fs.copy.copy_file`` between the same filesystems.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple


from .systems import System

Verdict = Dict[str, Any]


def _key(result) -> Tuple[str, str, str]:
    return result.workload.name, result.metric, result.system.name


def _index(results) -> Dict[Tuple[str, str, str], Any]:
    return {_key(result): result for result in results}


def reference_name(system: System) -> str:
    return "raw[mem]" if system.family == "mem" else "raw[os]"


def cost_ratio(result, reference, statistic: str = "median") -> Optional[float]:
    """How many times costlier ``result`` is than ``reference`` (None where undefined), by their
    medians or (``statistic="best"``) their best samples."""
    if reference is None or result.unit in ("MiB", "count", "B"):
        return None
    mine, theirs = getattr(result, statistic), getattr(reference, statistic)
    if not mine or not theirs:
        return None
    return theirs / mine if result.unit == "B/s" else mine / theirs


def _value(index, workload: str, metric: str, system: str) -> Optional[float]:
    result = index.get((workload, metric, system))
    return None if result is None else result.median


def _verdict(name: str, value: Optional[float], limit: float, detail: str, higher_is_better: bool = False) -> Verdict:
    if value is None:
        status = "N/A"
    elif higher_is_better:
        status = "PASS" if value >= limit else "MISS"
    else:
        status = "PASS" if value <= limit else "MISS"
    return {"target": name, "value": value, "limit": limit, "status": status, "detail": detail}


def _ratio_verdict(index, name: str, measure: Tuple[str, str], system: str, reference: str, limit: float) -> Verdict:
    """A cost-ratio target judged on medians; the ratio of the best samples is shown beside it."""
    result, against = index.get(measure + (system,)), index.get(measure + (reference,))
    if result is None:
        return _verdict(name, None, limit, "not run")
    best = cost_ratio(result, against, "best")
    detail = "cost ratio of medians; of best samples %s" % ("%.2f" % best if best is not None else "-")
    return _verdict(name, cost_ratio(result, against), limit, detail)


def targets(results) -> List[Verdict]:
    """The targets of issue 6, each PASS, MISS or N/A (not measured in this run)."""
    index = _index(results)
    verdicts: List[Verdict] = []
    reads = (("lookup.getinfo", "getinfo"), ("lookup.exists", "exists"), ("read.small", "readbytes"),
             ("read.large", "throughput"))
    for family in ("mem", "os"):
        unionfs, raw, multi = "unionfs[%s]" % family, "raw[%s]" % family, "multifs[%s]" % family
        for workload, metric in reads:
            verdicts.append(_ratio_verdict(index, "%s %s <= 1.3x %s" % (workload, unionfs, raw),
                                           (workload, metric), unionfs, raw, 1.3))
            verdicts.append(_ratio_verdict(index, "%s %s no slower than %s" % (workload, unionfs, multi),
                                           (workload, metric), unionfs, multi, 1.0))
        for workload in ("walk.warm", "walk.cold"):
            verdicts.append(_ratio_verdict(index, "%s %s <= 1.5x walking the layers raw" % (workload, unionfs),
                                           (workload, "walk"), unionfs, raw, 1.5))
        lowers = _series(results, "lowers.warm", "lookup", unionfs)
        if len(lowers) >= 2:
            (low_x, low), (high_x, high) = lowers[0], lowers[-1]
            verdicts.append(_verdict("warm lookups %s: %d lowers <= 2x %d lower" % (unionfs, high_x, low_x),
                                     high / low, 2.0, "time per op at %d / at %d" % (high_x, low_x)))
        for metric in ("lookup", "remove"):
            points = _series(results, "whiteouts", metric, unionfs)
            if len(points) >= 2:
                values = [value for _, value in points]
                verdicts.append(_verdict(
                    "whiteouts %s %s flat %d..%d (max/min <= 1.5)" % (metric, unionfs, points[0][0], points[-1][0]),
                    max(values) / min(values), 1.5, "max/min time per op over the points"))
    peak = _value(index, "copyup", "peak_memory", "unionfs[os]")
    verdicts.append(_verdict("copyup unionfs[os] peak memory < 64 MiB above baseline", peak, 64.0, "MiB"))
    mine, theirs = _value(index, "copyup", "throughput", "unionfs[os]"), _value(index, "copyup", "throughput", "raw[os]")
    verdicts.append(_verdict("copyup unionfs[os] throughput >= 0.8x fs.copy.copy_file",
                             mine / theirs if mine and theirs else None, 0.8, "throughput ratio",
                             higher_is_better=True))
    verdicts += real_data_targets(index)
    return verdicts


def _system_ratio(index, workload: str, metric: str, system: str, reference: str) -> Optional[float]:
    """``system``'s cost ratio against raw over ``reference``'s (how far behind it is)."""
    raw = index.get((workload, metric, "raw[os]"))
    mine, theirs = index.get((workload, metric, system)), index.get((workload, metric, reference))
    if raw is None or mine is None or theirs is None:
        return None
    ratio, other = cost_ratio(mine, raw), cost_ratio(theirs, raw)
    return ratio / other if ratio and other else None


def real_data_targets(index) -> List[Verdict]:
    """The targets of issue 11: on the real tree and on many lowers, cold and warm lookups and
    walks within 1.3x of raw and never more than 1.2x behind MultiFS or the kernel; whiteouts and
    lowers cost nothing extra; a tar.gz lower commits like a tar, with no decompression restart."""
    verdicts: List[Verdict] = []
    measures = [("usr.getinfo.cold", "getinfo"), ("usr.getinfo.warm", "getinfo"), ("usr.walk.cold", "walk"),
                ("usr.walk.warm", "walk"), ("usr.walkinfo.cold", "walk"), ("usr.walkinfo.warm", "walk"), ("usr.whited.cold", "getinfo"), ("many.getinfo.cold", "getinfo"),
                ("many.listdir.cold", "listdir")]
    for workload, metric in measures:
        if (workload, metric, "unionfs[os]") not in index:
            continue
        verdicts.append(_ratio_verdict(index, "%s unionfs[os] <= 1.3x raw[os]" % workload, (workload, metric),
                                       "unionfs[os]", "raw[os]", 1.3))
        for other in ("multifs[os]", "kernel"):
            if (workload, metric, other) in index and index[workload, metric, other].median is not None:
                verdicts.append(_verdict("%s unionfs[os] <= 1.2x %s's ratio" % (workload, other),
                                         _system_ratio(index, workload, metric, "unionfs[os]", other), 1.2,
                                         "ratio against raw over %s's" % other))
    whited, live = _value(index, "usr.whited.cold", "getinfo", "unionfs[os]"), \
        _value(index, "usr.getinfo.cold", "getinfo", "unionfs[os]")
    if whited is not None and live is not None:
        verdicts.append(_verdict("usr whited-out getinfo unionfs[os] <= 1.2x live getinfo (flat in whiteouts)",
                                 whited / live, 1.2, "cold time per op, whited-out / live"))
    tar, targz = _value(index, "archive.commit", "tar", "unionfs[os]"), _value(index, "archive.commit", "targz", "unionfs[os]")
    if tar is not None and targz is not None:
        verdicts.append(_verdict("archive.commit unionfs[os] tar.gz <= 1.3x tar", targz / tar, 1.3,
                                 "commit time from .tar.gz / from .tar"))
    restarts = _value(index, "archive.commit", "restarts", "unionfs[os]")
    if restarts is not None:
        verdicts.append(_verdict("archive.commit unionfs[os] decompression restarts == 0", restarts, 0.0,
                                 "gzip restarts during the commits"))
    # a walk reads little besides the data, so the decompression itself weighs: the target is
    # what tar.gz costs over tar beyond what it costs a raw streaming pass
    walks = [(_value(index, "archive.walkread", "tar", system), _value(index, "archive.walkread", "targz", system))
             for system in ("unionfs[os]", "raw[os]")]
    if all(tar and targz for tar, targz in walks):
        (mine_tar, mine_targz), (raw_tar, raw_targz) = walks
        verdicts.append(_verdict("archive.walkread unionfs[os] tar.gz/tar <= 1.2x raw's tar.gz/tar",
                                 (mine_targz / mine_tar) / (raw_targz / raw_tar), 1.2,  # type: ignore[operator]
                                 "(walk + read time from .tar.gz / from .tar) over raw's"))
    restarts = _value(index, "archive.walkread", "restarts", "unionfs[os]")
    if restarts is not None:
        verdicts.append(_verdict("archive.walkread unionfs[os] decompression restarts == 0", restarts, 0.0,
                                 "gzip restarts during the breadth-first walk + read"))
    return verdicts


def _series(results, series: str, metric: str, system: str) -> List[Tuple[int, float]]:
    points = [(result.workload.x, result.median) for result in results
              if result.workload.series == series and result.metric == metric and result.system.name == system
              and result.median is not None]
    return sorted(points)


def _format(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s/op":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if value >= scale or suffix == "µs":
                return "%.3g %s" % (value / scale, suffix)
    if unit == "B/s":
        return "%.0f MiB/s" % (value / 2 ** 20)
    if unit == "count":
        return "%d" % value
    if unit == "B":
        return "%.0f B" % value
    return "%.1f MiB" % value


def _ratio(ratio: Optional[float]) -> str:
    return "%.2f" % ratio if ratio is not None else ""


def markdown(results, verdicts: List[Verdict], meta: Dict[str, Any], systems: Sequence[System]) -> str:
    """The report: one table per workload (median, cost ratio against raw), then the targets."""
    index = _index(results)
    lines = ["# unionfs benchmarks (`%s`)" % meta["command"], "",
             "%(date_utc)s UTC, %(cpus)s CPUs, Python %(python)s, Linux %(kernel)s; run took %(seconds)ss." % meta,
             "Medians of %d repeats (copy-up: at most 5; the /usr walks and archive commits: 3), systems interleaved within each repeat; a warm"
             " sample is the best of 3 back-to-back passes on one view (7 for the scaling curves), a cold one"
             " a single pass on a fresh view. Ratio = cost against the raw system of the same family (>1 is slower)."
             % meta["sizes"]["repeats"], ""]
    absent = [system for system in systems if system.unavailable]
    for system in absent:
        lines.append("- %s not run: %s" % (system.name, system.unavailable))
    if absent:
        lines.append("")
    seen: List[Tuple[str, str]] = []
    for result in results:
        if (result.workload.name, result.metric) not in seen:
            seen.append((result.workload.name, result.metric))
    lines += ["| workload | metric | system | median | x raw | best | best x raw |", "|---|---|---|---|---|---|---|"]
    for workload_name, metric in seen:
        rows = [r for r in results if r.workload.name == workload_name and r.metric == metric]
        first = True
        for result in rows:
            reference = index.get((workload_name, metric, reference_name(result.system)))
            ratio, best_ratio = cost_ratio(result, reference), cost_ratio(result, reference, "best")
            label = "%s (%s)" % (workload_name, result.workload.title) if first else ""
            cell = result.note if result.note else _format(result.median, result.unit)
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                label, metric if first else "", result.system.name, cell, _ratio(ratio),
                "" if result.note else _format(result.best, result.unit), _ratio(best_ratio)))
            first = False
    lines += ["", "## Targets", "", "| status | target | value |", "|---|---|---|"]
    for verdict in verdicts:
        value = "-" if verdict["value"] is None else "%.2f" % verdict["value"]
        lines.append("| %s | %s | %s (%s) |" % (verdict["status"], verdict["target"], value, verdict["detail"]))
    counts = {status: sum(1 for v in verdicts if v["status"] == status) for status in ("PASS", "MISS", "N/A")}
    lines += ["", "%(PASS)d PASS, %(MISS)d MISS, %(N/A)d not measured." % counts, ""]
    return "\n".join(lines)


def as_json(results, verdicts: List[Verdict], meta: Dict[str, Any], systems: Sequence[System]) -> Dict[str, Any]:
    index = _index(results)
    rows = []
    for result in results:
        reference = index.get((result.workload.name, result.metric, reference_name(result.system)))
        rows.append({
            "workload": result.workload.name, "title": result.workload.title, "metric": result.metric,
            "unit": result.unit, "system": result.system.name, "family": result.system.family,
            "series": result.workload.series, "x": result.workload.x, "samples": result.samples,
            "median": result.median, "ratio_vs_raw": cost_ratio(result, reference), "best": result.best,
            "best_ratio_vs_raw": cost_ratio(result, reference, "best"), "note": result.note,
        })
    return {
        "meta": meta,
        "systems": [{"name": s.name, "family": s.family, "kind": s.kind, "unavailable": s.unavailable}
                    for s in systems],
        "results": rows,
        "targets": verdicts,
    }


def plot(results, path: str) -> bool:
    """The scaling curves as a PNG; False (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [("lowers.warm", "lookup", "warm lookups vs number of lowers"),
              ("lowers.cold", "lookup", "cold lookups vs number of lowers"),
              ("whiteouts", "lookup", "lookups vs whiteouts in the dir"),
              ("whiteouts", "remove", "remove vs whiteouts in the dir")]
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for axis, (series, metric, title) in zip(axes.flat, panels):
        names = sorted({r.system.name for r in results if r.workload.series == series})
        for name in names:
            points = _series(results, series, metric, name)
            if points:
                axis.plot([x for x, _ in points], [y * 1e6 for _, y in points], marker="o", label=name)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("lowers" if series.startswith("lowers") else "whiteouts")
        axis.set_ylabel("µs per operation")
        axis.grid(True, which="both", alpha=0.3)
        if names:
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True



