"""O(1) directory rename and metadata-only copy-up (issue 15), side by side with the kernel.

* ``movedir`` of a lower directory of N files holding 1 GiB in all (sparse lower files: the
  lower costs no disk, a copy would still write 1 GiB), N = 100 .. 100,000: the time of the
  call and the bytes it writes (the process's ``wchar``, every write(2) it makes) and what the
  upper holds afterwards on disk, for ``OverlayFS`` (OSFS upper) and for the kernel's
  rename(2) on a ``redirect_dir=on,metacopy=on`` mount of the same lower. Flat means the
  largest N costs at most 1.5x the smallest. One copying run (``redirect_dir=False``) at the
  smallest N shows what the redirect saves.
* chmod of a lower file of 1 MiB and of 1 GiB: time and bytes written, both systems; under
  1 MiB written and the 1 GiB chmod within 1.5x of the 1 MiB one.

Run (root, for the kernel mount): ``.venv/bin/python benchmarks/bench_redirect.py [--quick]``.
Prints a markdown table and the verdicts; exits 1 if a verdict fails. Times are the fastest of
15 runs (3 with ``--quick``; a shared machine disturbs single runs by milliseconds), bytes the median.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Tuple

import unionfs  # noqa: F401
from fs.osfs import OSFS

from unionfs import OverlayFS

GIB = 1 << 30
MIB = 1 << 20
REPEATS = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def wchar() -> int:
    """Bytes this process has passed to write(2) and its kin so far."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def disk_bytes(root: str) -> int:
    """What a directory tree holds on disk (allocated blocks), the directories included."""
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def make_lower(root: str, files: int, total: int = GIB) -> None:
    """``/big`` holding ``files`` sparse files of ``total`` bytes in all, 100 per directory."""
    size = total // files
    for number in range(files):
        directory = os.path.join(root, "big", "d%04d" % (number // 100))
        if number % 100 == 0:
            os.makedirs(directory)
        with open(os.path.join(directory, "f%03d" % (number % 100)), "wb") as out:
            out.truncate(size)


@contextlib.contextmanager
def kernel_mount(lower: str, scratch: str) -> Iterator[Tuple[str, str]]:
    """A ``redirect_dir=on,metacopy=on`` overlay of ``lower``: (merged, upperdir)."""
    upper, work, merged = (tempfile.mkdtemp(dir=scratch, prefix=p) for p in ("upper-", "work-", "merged-"))
    options = "lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=on,metacopy=on" % (lower, upper, work)
    if _libc.mount(b"overlay", merged.encode(), b"overlay", 0, options.encode()) != 0:
        raise OSError(ctypes.get_errno(), "mount -t overlay -o " + options)
    try:
        yield merged, upper
    finally:
        if _libc.umount2(merged.encode(), 0) != 0:
            _libc.umount2(merged.encode(), 2)


def measure(action: Callable[[], None], upper_dir: str) -> Tuple[float, int, int]:
    """(seconds, bytes written by this process, bytes the upper grew on disk) of one action."""
    held, written = disk_bytes(upper_dir), wchar()
    os.sync()
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    return elapsed, wchar() - written, disk_bytes(upper_dir) - held


def median_of(runs: List[Tuple[float, int, int]]) -> Tuple[float, int, int]:
    """The fastest run's time (the least disturbed by the other work on a shared machine) and
    the median bytes."""
    return (min(r[0] for r in runs), int(statistics.median(r[1] for r in runs)),
            int(statistics.median(r[2] for r in runs)))


def unionfs_run(lower: str, scratch: str, action: Callable[[OverlayFS], None], **options: bool) -> Tuple[float, int, int]:
    upper = tempfile.mkdtemp(dir=scratch, prefix="uupper-")
    overlay = OverlayFS([OSFS(lower)], OSFS(upper), **options)
    try:
        overlay.listdir("/")  # the sidecar exists and the root is cached before the clock runs
        return measure(lambda: action(overlay), upper)
    finally:
        overlay.close()
        shutil.rmtree(upper)


def kernel_run(lower: str, scratch: str, action: Callable[[str], None]) -> Tuple[float, int, int]:
    with kernel_mount(lower, scratch) as (merged, upper):
        os.listdir(merged)
        result = measure(lambda: action(merged), upper)
    shutil.rmtree(upper, ignore_errors=True)
    return result


def main(argv: List[str]) -> int:
    quick = "--quick" in argv
    counts = [100, 1000, 10000] if quick else [100, 1000, 10000, 100000]
    repeats = 3 if quick else REPEATS
    rows: List[Tuple[str, str, float, int, int]] = []
    verdicts: List[Tuple[str, bool, str]] = []
    scratch = tempfile.mkdtemp(prefix="unionfs-bench-redirect-")
    try:
        by_count: Dict[str, List[Tuple[int, float, int]]] = {"unionfs": [], "kernel": []}
        for files in counts:
            lower = tempfile.mkdtemp(dir=scratch, prefix="lower-")
            make_lower(lower, files)
            os.sync()  # the lower's own metadata written back before any clock runs
            ours = median_of([unionfs_run(lower, scratch, lambda o: o.movedir("big", "moved", create=True)) for _ in range(repeats)])
            theirs = median_of([kernel_run(lower, scratch, lambda m: os.rename(m + "/big", m + "/moved")) for _ in range(repeats)])
            rows.append(("movedir, %d files / 1 GiB" % files, "unionfs", *ours))
            rows.append(("movedir, %d files / 1 GiB" % files, "kernel rename(2)", *theirs))
            by_count["unionfs"].append((files, ours[0], ours[1]))
            by_count["kernel"].append((files, theirs[0], theirs[2]))
            if files == counts[0]:
                copying = unionfs_run(lower, scratch, lambda o: o.movedir("big", "moved", create=True), redirect_dir=False, metacopy=False)
                rows.append(("movedir, %d files / 1 GiB" % files, "unionfs, redirect_dir=False", *copying))
            shutil.rmtree(lower)
        for system, series in by_count.items():
            (small_n, small_t, small_b), (large_n, large_t, large_b) = series[0], series[-1]
            ratio = large_t / small_t if small_t else float("inf")
            verdicts.append(("%s movedir time flat %d -> %d files (<= 1.5x)" % (system, small_n, large_n), ratio <= 1.5, "%.2fx" % ratio))
            verdicts.append(("%s movedir writes flat %d -> %d files (<= 1.5x)" % (system, small_n, large_n),
                             large_b <= 1.5 * max(small_b, 1), "%d -> %d bytes" % (small_b, large_b)))
        times: Dict[str, Dict[int, Tuple[float, int, int]]] = {"unionfs": {}, "kernel": {}}
        for size in (MIB, GIB):
            lower = tempfile.mkdtemp(dir=scratch, prefix="lower-")
            with open(os.path.join(lower, "file"), "wb") as out:
                out.truncate(size)
            label = "chmod of a %s lower file" % ("1 MiB" if size == MIB else "1 GiB")
            chmod = {"access": {"permissions": ["u_r", "u_w"]}}
            ours = median_of([unionfs_run(lower, scratch, lambda o: o.setinfo("file", chmod)) for _ in range(repeats)])
            theirs = median_of([kernel_run(lower, scratch, lambda m: os.chmod(m + "/file", 0o600)) for _ in range(repeats)])
            rows.append((label, "unionfs", *ours))
            rows.append((label, "kernel chmod(2)", *theirs))
            times["unionfs"][size], times["kernel"][size] = ours, theirs
            shutil.rmtree(lower)
        ours_gib = times["unionfs"][GIB]
        verdicts.append(("unionfs chmod of 1 GiB writes under 1 MiB", ours_gib[1] < MIB and ours_gib[2] < MIB,
                         "%d bytes written, upper grew %d bytes" % (ours_gib[1], ours_gib[2])))
        for system, by_size in times.items():
            ratio = by_size[GIB][0] / by_size[MIB][0] if by_size[MIB][0] else float("inf")
            verdicts.append(("%s chmod time constant 1 MiB -> 1 GiB (<= 1.5x)" % system, ratio <= 1.5, "%.2fx" % ratio))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("| operation | system | fastest time | bytes written (wchar) | upper grew on disk |")
    print("|---|---|---:|---:|---:|")
    for operation, system, seconds, written, grew in rows:
        print("| %s | %s | %.2f ms | %s | %s |" % (operation, system, seconds * 1000, "{:,}".format(written), "{:,}".format(grew)))
    print()
    for name, ok, detail in verdicts:
        print("- %s %s: %s" % ("PASS" if ok else "MISS", name, detail))
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
