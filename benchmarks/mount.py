"""``unionfs mount`` against the kernel's overlayfs, fuse-overlayfs and the raw directory,
with real programs, side by side in one run.

    python -m benchmarks.mount [--preset quick|full] [--only WORKLOAD ...] [--json PATH]
                               [--baseline CHECKOUT]

Every system gets the same lower directory and a fresh empty upper; each workload runs on
a fresh mount after ``echo 3 > /proc/sys/vm/drop_caches`` (cold caches, as a first use
would see them), ``--repeat`` times, and the median counts. Workloads (full preset sizes):
``find`` + stat of 100k entries, reading 2,000 small files, a 1 GiB sequential read,
``tar x`` of 20k files, ``git status`` in a 20k-file repository, copy-up of a 1 GiB file
by appending one byte; and an OCI image lower: ``unionfs mount`` of the image layout
itself against extracting its layer and mounting the directory (kernel, fuse-overlayfs).
Ratios are time(unionfs) / time(fuse-overlayfs), so lower is better; for the sequential
read the throughput ratio is printed too. ``--baseline CHECKOUT`` adds a fifth system,
``unionfs (baseline)``: the mount of another source tree of this project (for example
``git archive OLD | tar x -C CHECKOUT``), so that a change is measured before and after
in the same run, at the same load. ``--trivial`` adds ``trivial``: a minimal mfusepy
passthrough of an empty directory (``benchmarks/mount_trivial.py``), the floor of a Python
daemon on libfuse's high-level API, for the writing workload ``tar x`` only. The unionfs
trees' bytecode is compiled before timing (``compileall``, as installing a wheel does), so a
mount's start imports rather than compiles (with ``PYTHONDONTWRITEBYTECODE=1`` it would
compile every module at every start); ``--no-bytecode`` removes it instead and keeps it from
being written, to measure that start. Needs root, fuse3, fuse-overlayfs, umoci, git.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

PRESETS = {
    # entries for find, small files, MiB sequential, tar members, git files, MiB copy-up
    "full": dict(tree=100_000, small=2_000, big_mib=1024, tar=20_000, git=20_000, copy_mib=1024, repeat=3),
    "quick": dict(tree=10_000, small=500, big_mib=128, tar=2_000, git=2_000, copy_mib=128, repeat=3),
}
SYSTEMS = ("raw", "kernel", "fuse-overlayfs", "unionfs")
BASELINE = "unionfs (baseline)"
TRIVIAL = "trivial"
#: the workloads the trivial passthrough runs (it serves an empty directory of its own)
TRIVIAL_WORKLOADS = ("tar x",)
#: the source tree this benchmark mounts from (``python -m unionfs`` runs there)
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare_bytecode(python: str, tree: str, bytecode: bool) -> None:
    """Compile the ``unionfs`` package of ``tree`` (``bytecode``), or remove its compiled
    modules and keep every process of the run from writing them again."""
    package = os.path.join(tree, "unionfs")
    if bytecode:
        subprocess.run([python, "-m", "compileall", "-q", package], check=True, stdout=subprocess.DEVNULL)
        return
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    for directory, subdirectories, _ in os.walk(package):
        if "__pycache__" in subdirectories:
            shutil.rmtree(os.path.join(directory, "__pycache__"))
            subdirectories.remove("__pycache__")


def sh(command: str, cwd: Optional[str] = None) -> None:
    subprocess.run(command, shell=True, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as control:
        control.write("3\n")


def build_lower(root: str, sizes: Dict[str, int]) -> str:
    """The one lower directory every system mounts."""
    lower = os.path.join(root, "lower")
    for kind, count in (("tree", sizes["tree"]), ("small", sizes["small"])):
        for number in range(count):
            directory = os.path.join(lower, kind, "d%03d" % (number // 100))
            if number % 100 == 0:
                os.makedirs(directory)
            with open(os.path.join(directory, "f%05d" % number), "wb") as out:
                out.write(b"x" * (4096 if kind == "small" else 64))
    chunk = os.urandom(1 << 20)
    with open(os.path.join(lower, "big"), "wb") as out:
        for _ in range(sizes["big_mib"]):
            out.write(chunk)
    with open(os.path.join(lower, "copy"), "wb") as out:
        for _ in range(sizes["copy_mib"]):
            out.write(chunk)
    repo = os.path.join(lower, "repo")
    for number in range(sizes["git"]):
        directory = os.path.join(repo, "d%03d" % (number // 100))
        if number % 100 == 0:
            os.makedirs(directory)
        with open(os.path.join(directory, "f%05d.txt" % number), "w") as out:
            out.write("line %d\n" % number)
    git = "git -c user.name=b -c user.email=b@b "
    sh("git init -q . && %s add -A && %s commit -qm base" % (git, git), cwd=repo)
    return lower


def build_archive(root: str, members: int) -> str:
    path = os.path.join(root, "archive.tar")
    with tarfile.open(path, "w") as archive:
        for number in range(members):
            data = b"member %d\n" % number
            info = tarfile.TarInfo("t/d%03d/f%05d" % (number // 100, number))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@contextlib.contextmanager
def mounted(system: str, lowers: List[str], root: str, python: str, baseline: Optional[str] = None,
            options: Tuple[str, ...] = ()) -> Iterator[str]:
    """The merged directory of ``system`` over ``lowers`` with a fresh upper (``baseline``:
    the source tree the baseline system's mount runs from; ``options``: more arguments of
    ``unionfs mount``)."""
    base = tempfile.mkdtemp(dir=root, prefix="".join(c if c.isalnum() else "-" for c in system) + "-")
    upper, work, mnt = (os.path.join(base, name) for name in ("upper", "work", "mnt"))
    for directory in (upper, work, mnt):
        os.mkdir(directory)
    try:
        if system == "raw":
            yield lowers[0]  # reads only; writing workloads take a copy target of their own
            return
        if system == "kernel":
            sh("mount -t overlay overlay %s -o lowerdir=%s,upperdir=%s,workdir=%s" % (mnt, ":".join(lowers), upper, work))
        elif system == TRIVIAL:
            sh("%s -m benchmarks.mount_trivial %s %s" % (python, upper, mnt),
               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        elif system == "fuse-overlayfs":
            sh("fuse-overlayfs -o lowerdir=%s,upperdir=%s,workdir=%s %s" % (":".join(lowers), upper, work, mnt))
        else:
            # run from a source tree (python -m puts the working directory first on sys.path)
            sh("%s -m unionfs mount %s --upper %s %s %s" % (python, " ".join(lowers), upper, mnt, " ".join(options)),
               cwd=baseline if system == BASELINE else SOURCE)
        try:
            yield mnt
        finally:
            for command in ("umount %s" % mnt, "umount -l %s" % mnt):
                if subprocess.run(command, shell=True, capture_output=True).returncode == 0:
                    break
            time.sleep(0.2)  # let a FUSE daemon finish closing its upper
    finally:
        shutil.rmtree(base, ignore_errors=True)


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def workloads(archive: str, root: str) -> Dict[str, Callable[[str], None]]:
    def writable(view: str) -> str:
        """Where a writing workload writes: the view itself, or for raw a fresh directory."""
        return view if not view.endswith("/lower") else tempfile.mkdtemp(dir=root, prefix="raw-write-")

    def copy_up(view: str) -> None:
        if view.endswith("/lower"):
            target = tempfile.mkdtemp(dir=root, prefix="raw-copy-")
            sh("cp %s/copy %s/copy && echo >> %s/copy" % (view, target, target))
        else:
            sh("echo >> %s/copy" % view)

    return {
        "find+stat": lambda view: sh("find %s/tree -printf '%%s %%m %%u\\n' > /dev/null" % view),
        "small reads": lambda view: sh("find %s/small -type f -print0 | xargs -0 cat > /dev/null" % view),
        "sequential read": lambda view: sh("dd if=%s/big of=/dev/null bs=1M" % view),
        "tar x": lambda view: sh("tar xf %s" % archive, cwd=writable(view)),
        "git status": lambda view: sh("git status --porcelain > /dev/null", cwd=os.path.join(view, "repo")),
        "copy-up by append": copy_up,
    }


def run(preset: str, only: List[str], python: str, baseline: Optional[str] = None,
        sizes_set: Optional[Dict[str, int]] = None, systems_only: Optional[List[str]] = None,
        trivial: bool = False, bytecode: bool = True) -> Dict[str, Dict[str, float]]:
    sizes = dict(PRESETS[preset], **(sizes_set or {}))
    for tree in (SOURCE,) + ((baseline,) if baseline else ()):
        prepare_bytecode(python, tree, bytecode)
    every = SYSTEMS + ((BASELINE,) if baseline else ()) + ((TRIVIAL,) if trivial else ())
    all_systems = tuple(s for s in every if not systems_only or s in systems_only)
    root = tempfile.mkdtemp(prefix="unionfs-mount-bench-")
    results: Dict[str, Dict[str, float]] = {}
    try:
        print("building the lower (%s preset)..." % preset, flush=True)
        lower = build_lower(root, sizes)
        archive = build_archive(root, sizes["tar"])
        for name, workload in workloads(archive, root).items():
            if only and name not in only:
                continue
            results[name] = {}
            systems = tuple(s for s in all_systems if s != TRIVIAL or name in TRIVIAL_WORKLOADS)
            samples: Dict[str, List[float]] = {system: [] for system in systems}
            for _ in range(sizes["repeat"]):
                for system in systems:  # interleaved: a change of the machine's load hits every system alike
                    with mounted(system, [lower], root, python, baseline) as view:
                        drop_caches()
                        samples[system].append(timed(lambda: workload(view)))
            for system in systems:
                results[name][system] = statistics.median(samples[system])
                print("  %-18s %-15s %8.3f s  (%s)" % (name, system, results[name][system],
                                                       " ".join("%.3f" % t for t in samples[system])), flush=True)
        if not only or "oci" in only:
            results.update(oci(root, lower, python, sizes["repeat"], baseline))
    finally:
        subprocess.run("umount -l %s/*/mnt 2>/dev/null" % root, shell=True)
        shutil.rmtree(root, ignore_errors=True)
    return results


def oci(root: str, lower: str, python: str, repeat: int, baseline: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Time to a first full walk of an image's tree: unionfs mounts the OCI layout as it is;
    the others must extract the layer to a directory first. Two rows: the whole round (mount,
    walk, unmount, and for the others the removal of the extracted tree: what the row measured
    before 2026-12-02) and the time until the walk ends."""
    layout = os.path.join(root, "image")
    layer = os.path.join(root, "layer.tar")
    sh("tar -C %s -cf %s tree small" % (lower, layer))
    sh("umoci init --layout %s && umoci new --image %s:base && umoci raw add-layer --image %s:base %s"
       % (layout, layout, layout, layer))
    walk = "find %s -printf '%%s %%m\\n' > /dev/null"
    systems = ("kernel", "fuse-overlayfs", "unionfs") + ((BASELINE,) if baseline else ())
    walked: Dict[str, List[float]] = {system: [] for system in systems}  # until the walk ends
    done: Dict[str, List[float]] = {system: [] for system in systems}  # with unmount and clean-up
    for _ in range(repeat):
        for system in systems:  # interleaved, as the other workloads: a change of load hits all alike
            drop_caches()
            start = time.perf_counter()
            if system in ("unionfs", BASELINE):
                with mounted(system, [layout], root, python, baseline) as view:
                    sh(walk % view)
                    walked[system].append(time.perf_counter() - start)
            else:
                extracted = tempfile.mkdtemp(dir=root, prefix="extract-")
                sh("tar -C %s -xf %s" % (extracted, layer))
                with mounted(system, [extracted], root, python) as view:
                    sh(walk % view)
                    walked[system].append(time.perf_counter() - start)
                shutil.rmtree(extracted)
            done[system].append(time.perf_counter() - start)
    results: Dict[str, Dict[str, float]] = {}
    for name, samples in (("OCI image lower (extract+mount vs mount)", done),
                          ("OCI image lower, until the walk ends", walked)):
        results[name] = {}
        for system in systems:
            results[name][system] = statistics.median(samples[system])
            print("  %-38s %-18s %8.3f s  (%s)" % (name, system, results[name][system],
                                                   " ".join("%.3f" % t for t in samples[system])), flush=True)
    return results


def report(results: Dict[str, Dict[str, float]], preset: str) -> str:
    baseline = any(BASELINE in times for times in results.values())
    trivial = any(TRIVIAL in times for times in results.values())
    extra = ((BASELINE,) if baseline else ()) + ((TRIVIAL,) if trivial else ())
    systems = SYSTEMS + extra
    head = "| workload (%s preset) | %s | unionfs / fuse-overlayfs |" % (preset, " | ".join(systems))
    for system in extra:
        head += " %s / fuse-overlayfs |" % ("baseline" if system == BASELINE else system)
    lines = [head, "|---" * (len(systems) + 2 + len(extra)) + "|"]
    for name, times in results.items():
        cells = ["%.3f s" % times[s] if s in times else "-" for s in systems]
        ratios = []
        for system in ("unionfs",) + extra:
            if system not in times or "fuse-overlayfs" not in times:
                ratios.append("-")
                continue
            ratio = times[system] / times["fuse-overlayfs"]
            throughput = " (throughput %.2fx)" % (1 / ratio) if name == "sequential read" else ""
            ratios.append("%.2fx%s" % (ratio, throughput))
        lines.append("| %s | %s | %s |" % (name, " | ".join(cells), " | ".join(ratios)))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mount", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--only", action="append", default=[], help="one workload by name (repeatable), or 'oci'")
    parser.add_argument("--json", help="write the medians here")
    parser.add_argument("--baseline", help="a source tree of this project whose mount runs as a fifth system")
    parser.add_argument("--trivial", action="store_true",
                        help="add a trivial mfusepy passthrough (benchmarks/mount_trivial.py) for tar x")
    parser.add_argument("--size", action="append", default=[], metavar="KEY=N",
                        help="override one size of the preset (%s, repeat)" % ", ".join(k for k in PRESETS["full"] if k != "repeat"))
    parser.add_argument("--no-bytecode", action="store_true",
                        help="do not compile unionfs's modules first: each mount compiles them as it starts")
    parser.add_argument("--system", action="append", default=[],
                        help="only this system (repeatable; fuse-overlayfs is needed for the ratios)")
    args = parser.parse_args(argv)
    try:
        sizes_set = {key: int(value) for key, _, value in (item.partition("=") for item in args.size)}
    except ValueError:
        parser.error("--size takes KEY=N")
    unknown = set(sizes_set) - set(PRESETS["full"])
    if unknown:
        parser.error("unknown size %s" % ", ".join(sorted(unknown)))
    if os.geteuid() != 0:
        print("benchmarks.mount: needs root (mounts, drop_caches)", file=sys.stderr)
        return 2
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "unionfs", "tools", "mount.py")):
        print("benchmarks.mount: %s is not a source tree of unionfs" % args.baseline, file=sys.stderr)
        return 2
    results = run(args.preset, args.only, sys.executable, os.path.abspath(args.baseline) if args.baseline else None,
                  sizes_set, [BASELINE if s == "baseline" else s for s in args.system], args.trivial,
                  not args.no_bytecode)
    print(report(results, args.preset))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
