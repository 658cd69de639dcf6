"""Where a ``tar x`` through ``unionfs mount`` spends the daemon's time: the requests libfuse
hands to Python, counted by operation, and a cProfile of the serving thread.

    python -m benchmarks.mount_profile [--members 2000] [--top 30] [--sort tottime] [--no-profile]

The mount is served single-threaded (``MountOptions(threads=False)``: libfuse then runs
every callback on the thread that mounted, the one cProfile watches) in a child process,
over an empty lower directory and a fresh upper; the parent runs ``tar xf`` of an archive
of ``--members`` small files (as ``benchmarks.mount``'s "tar x" workload), unmounts, and
prints what the child found. Without ``--no-profile`` the times are the profiler's (each
Python call costs more under it); the counts are exact either way. Needs root and fuse3.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from .mount import build_archive


def _serve(lower: str, upper: str, mountpoint: str, report: str, profile: bool, top: int, sort: str,
           ready_fd: int, threads: int = 0) -> None:
    """The child: mount, serve until unmounted, write the counts and the profile to ``report``."""
    from unionfs.tools import mount

    counts: Dict[str, int] = collections.Counter()
    make_class = mount._fuse_class

    def counting_class(mfusepy: Any) -> Any:
        base = make_class(mfusepy)

        class Counting(base):  # type: ignore[misc,valid-type]
            def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
                counts[func.__name__] += 1
                return super()._wrapper(func, *args, **kwargs)

        return Counting

    mount._fuse_class = counting_class  # type: ignore[assignment]
    if threads:
        options = mount.fuse_options

        def fewer_threads(chosen: Any) -> Dict[str, Any]:
            result = options(chosen)
            result["max_threads"] = result["max_idle_threads"] = threads
            return result

        mount.fuse_options = fewer_threads  # type: ignore[assignment]
    overlay = mount.open_overlay([lower], upper)

    def ready() -> None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)

    profiler = cProfile.Profile() if profile else None
    start_cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        with overlay:
            mount.serve(overlay, mountpoint, mount.MountOptions(threads=bool(threads)), statfs_path=upper, on_ready=ready)
    finally:
        if profiler is not None:
            profiler.disable()
    cpu = time.process_time() - start_cpu
    text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
        text = out.getvalue()
    with open(report, "w") as handle:
        json.dump({"counts": dict(counts), "cpu": cpu, "profile": text}, handle)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mount_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ncalls)")
    parser.add_argument("--no-profile", action="store_true", help="count requests only (times without the profiler)")
    parser.add_argument("--threads", type=int, default=0,
                        help="serve multi-threaded with this many libfuse workers, as unionfs mount does (16), "
                             "unprofiled: counts and CPU only")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.mount_profile: needs root (mounts)", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="unionfs-mount-profile-")
    try:
        lower, upper, mnt = (os.path.join(root, name) for name in ("lower", "upper", "mnt"))
        for directory in (lower, upper, mnt):
            os.mkdir(directory)
        archive = build_archive(root, args.members)
        report = os.path.join(root, "report.json")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                _serve(lower, upper, mnt, report, not args.no_profile and not args.threads, args.top, args.sort,
                       write_end, args.threads)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            if pipe.read() != b"ok":
                print("benchmarks.mount_profile: the mount did not come up", file=sys.stderr)
                os.waitpid(pid, 0)
                return 1
        start = time.perf_counter()
        subprocess.run(["tar", "xf", archive], cwd=mnt, check=True)
        elapsed = time.perf_counter() - start
        subprocess.run(["umount", mnt], check=True)
        os.waitpid(pid, 0)
        with open(report) as handle:
            found = json.load(handle)
        counts = found["counts"]
        total = sum(counts.values())
        print("tar x of %d members: %.3f s wall (%s mount%s), daemon CPU %.3f s"
              % (args.members, elapsed, "%d-thread" % args.threads if args.threads else "single-threaded",
                 ", profiled" if found["profile"] else "", found["cpu"]))
        print("%d Python callbacks, %.1f per member:" % (total, total / args.members))
        for name, count in sorted(counts.items(), key=lambda item: -item[1]):
            print("  %-16s %7d  %5.2f per member" % (name, count, count / args.members))
        if found["profile"]:
            print(found["profile"])
    finally:
        subprocess.run(["umount", "-l", os.path.join(root, "mnt")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
