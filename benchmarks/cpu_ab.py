"""CPU-time A/B of the cold workloads: raw OSFS, a baseline checkout of unionfs and this one.

    python -m benchmarks.cpu_ab [--baseline REV] [--repeat N] [--only NAME ...] [--preset full]

On a loaded machine wall times of a one-pass cold sample swing by more than the changes
being measured; ``time.process_time`` counts only this process's CPU, which other processes'
load hardly enters. The baseline is the package as of the git revision ``REV`` (``main`` by
default), imported beside this one under another name (as ``python -m benchmarks
--baseline`` does). Every repeat runs the three systems in a rotating order, each sample on a
freshly opened view (the workload's data sets are the benchmarks', built once); the report is
the median CPU seconds per operation and ratios of medians. The machine's page cache is warm
for every system alike (raw runs first in the first repeat, so it is warmed by a discarded
pass).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import os
import statistics
import sys
import tarfile
import tempfile
import time
from typing import Callable, Dict, List, Tuple

from fs import errors

from .systems import View, all_systems, baseline_system
from .workloads import PRESETS, Sizes, Stack, _TreeWalker, build_archives, build_many_lowers, build_usr, build_usr_whited


def _getinfo_all(view: View, stack: Stack) -> int:
    getinfo = view.fs.getinfo
    for path in stack.data["samples"]:
        getinfo(path)
    return len(stack.data["samples"])


def _getinfo_whited(view: View, stack: Stack) -> int:
    getinfo = view.fs.getinfo
    hidden = view.system.kind != "raw"
    for path in stack.data["samples"]:
        try:
            getinfo(path)
            assert not hidden, path
        except errors.ResourceNotFound:
            assert hidden, path
    return len(stack.data["samples"])


def _many_getinfo(view: View, stack: Stack) -> int:
    target = view.layers[0] if view.layers else view.fs
    paths = stack.data["top"]
    for path in paths:
        target.getinfo(path)
    return len(paths)


def _many_listdir(view: View, stack: Stack) -> int:
    names = view.fs.listdir("/d")
    assert len(names) == stack.data["expected"], (len(names), stack.data["expected"])
    return 1


def _walk_files(view: View, stack: Stack) -> int:
    walker = _TreeWalker(frozenset(stack.data["symlinked"]))
    return max(1, sum(1 for _ in walker.files(view.fs)))


def _archive_open(name: str) -> Callable[[View, Stack], int]:
    """Open the archive ``name`` as a lower and index it, per member: raw is what fs's own
    ``TarFS`` does at open (``tarfile``'s ``getmembers``), a unionfs system its
    ``open_archive`` (the baseline's own, imported with its package)."""

    def run(view: View, stack: Stack) -> int:
        path = stack.data[name]
        if view.system.kind == "raw":
            with tarfile.open(path) as archive:
                archive.getmembers()
        else:
            package = view.system.overlay.__module__.split(".")[0]
            importlib.import_module(package + ".formats.archives").open_archive(path, unsafe="skip").close()
        return int(stack.data["members"])

    return run


def _layer_index(view: View, stack: Stack) -> int:
    """Index the plain tar as an OCI image layer (an uncompressed layer: what is left is its
    headers, its digest and its markers), per member: raw is what a reader that verifies it
    must do with the standard library, ``tarfile``'s ``getmembers`` and a SHA-256 of the file
    (the layer's digest), a unionfs system its ``index_layer`` (the baseline's own)."""
    path = stack.data["tree.tar"]
    if view.system.kind == "raw":
        with tarfile.open(path) as archive:
            archive.getmembers()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    else:
        package = view.system.overlay.__module__.split(".")[0]
        oci = importlib.import_module(package + ".formats.oci.oci")
        blobs = importlib.import_module(package + ".formats.oci.blobs")
        blob = blobs.Blob("tree.tar", blobs.file_opener(path))
        index = oci.index_layer(blob)
        if index.stream is not None:
            index.stream.close()
    return int(stack.data["members"])


def _archives(sizes: Sizes, scratch: str) -> Stack:
    """The archives of ``archive_root``, and that tree as the views' layer (which the
    workloads do not use: each opens its archive itself)."""
    stack = build_archives(sizes, scratch)
    stack.os_lowers = [stack.data["source"]]
    with tarfile.open(stack.data["tree.tar"]) as archive:
        stack.data["members"] = len(archive.getmembers())
    return stack


def _many(sizes: Sizes, scratch: str) -> Stack:
    stack = build_many_lowers(sizes, scratch)
    stack.data["top"] = ["/d/top%d" % index for index in range(sizes.scaling_ops)]
    stack.data["expected"] = 20 * sizes.many_lowers + sizes.scaling_ops
    return stack


#: name -> (data set, operation); data sets built once per name of the first column
WORKLOADS: Dict[str, Tuple[str, Callable[[View, Stack], int]]] = {
    "usr.getinfo.cold": ("usr", _getinfo_all),
    "usr.whited.cold": ("usr-whited", _getinfo_whited),
    "many.getinfo.cold": ("many", _many_getinfo),
    "many.listdir.cold": ("many", _many_listdir),
    "usr.walk.cold": ("usr", _walk_files),
    "archive.open.tar": ("archives", _archive_open("tree.tar")),
    "archive.open.targz": ("archives", _archive_open("tree.tar.gz")),
    "archive.index.layer": ("archives", _layer_index),
}
BUILDERS = {"usr": build_usr, "usr-whited": build_usr_whited, "many": _many, "archives": _archives}


def _sample(system: object, stack: Stack, operation: Callable[[View, Stack], int]) -> float:
    with system.view(stack) as view:  # type: ignore[attr-defined]
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            count = operation(view, stack)
            return (time.process_time() - start) / count
        finally:
            gc.enable()


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", metavar="REV")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--only", action="append", default=[], choices=sorted(WORKLOADS))
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    sizes = PRESETS[args.preset]
    only = args.only or ["usr.getinfo.cold", "usr.whited.cold", "many.getinfo.cold", "many.listdir.cold"]
    with tempfile.TemporaryDirectory(prefix="cpu-ab-") as scratch:
        systems = {system.name: system for system in all_systems(scratch, probe=False)}
        base = baseline_system(args.baseline, scratch)
        chosen = [("raw", systems["raw[os]"]), ("base", base), ("new", systems["unionfs[os]"])]
        stacks: Dict[str, Stack] = {}
        print("load average %.1f %.1f %.1f; baseline %s; %d repeats" % (os.getloadavg() + (args.baseline, args.repeat)))
        print("%-20s %10s %10s %10s %9s %9s %9s" % ("workload", "raw us", "base us", "new us", "base/raw", "new/raw", "new/base"))
        for name in only:
            data, operation = WORKLOADS[name]
            if data not in stacks:
                os.makedirs(os.path.join(scratch, data))
                stacks[data] = BUILDERS[data](sizes, os.path.join(scratch, data))
            stack = stacks[data]
            for _label, system in chosen:  # one discarded pass each: the page cache, the imports
                _sample(system, stack, operation)
            samples: Dict[str, List[float]] = {label: [] for label, _ in chosen}
            for repeat in range(args.repeat):
                order = chosen[repeat % 3:] + chosen[: repeat % 3]
                for label, system in order:
                    samples[label].append(_sample(system, stack, operation))
            median = {label: statistics.median(values) for label, values in samples.items()}
            print("%-20s %10.2f %10.2f %10.2f %9.2f %9.2f %9.2f" % (
                name, median["raw"] * 1e6, median["base"] * 1e6, median["new"] * 1e6,
                median["base"] / median["raw"], median["new"] / median["raw"], median["new"] / median["base"]))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
