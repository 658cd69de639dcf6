"""An S3 base through the overlay against plain s3fs doing the same reads on the same bucket.

The endpoint is the tests' S3 (moto in server mode on 127.0.0.1, tests/support/s3server.py),
whose recorder counts every request the clients send. For each workload, both sides run
back to back in one process, each from a cold client, and the table gives requests and
seconds side by side with the overlay's ratio. Targets (issue 16): never more requests than
the direct access needs, and the overlay's time under 1.3x of the client's.

Run: ``.venv/bin/python -m benchmarks.bench_s3 [--objects N] [--prefixes P] [--repeat R]``
(needs the test extra: moto and s3fs). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Callable, Dict, List, Tuple

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS

from tests.support.s3 import S3Server
from unionfs import OverlayFS


def _direct_client():
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)


def measure(server: S3Server, action: Callable[[], object], repeat: int) -> Tuple[int, float]:
    """(requests of one run, median seconds over ``repeat`` runs) of ``action``."""
    times: List[float] = []
    requests = 0
    for _ in range(repeat):
        server.reset()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
        requests = len(server.log())
    return requests, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--prefixes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = S3Server()
    try:
        os.environ.update(server.environ)
        bucket = server.new_bucket()
        per_prefix = max(1, args.objects // args.prefixes)
        names = ["p%03d/f%04d.txt" % (p, f) for p in range(args.prefixes) for f in range(per_prefix)]
        server.put(bucket, {"base/" + name: b"x" * 1024 for name in names}, threads=32)
        url = "s3://%s/base" % bucket
        rng = random.Random(16)
        lookups = [rng.choice(names) for _ in range(1000)]
        reads = rng.sample(names, 100)

        def overlay() -> OverlayFS:
            return OverlayFS([url], upper=MemoryFS())

        workloads: Dict[str, Tuple[Callable[[], object], Callable[[], object]]] = {
            "cold walk (every file, with sizes)": (
                lambda: sum(info.size for _, info in overlay().walk.info(namespaces=["details"]) if info.is_file),
                lambda: sum(
                    entry["size"]
                    for _, _, files in _direct_client().walk(bucket + "/base", detail=True)
                    for entry in files.values()
                ),
            ),
            "1,000 random lookups (cold client)": (
                lambda: [(lambda o: [o.getinfo(n, ["details"]) for n in lookups])(overlay())],
                lambda: [(lambda c: [c.info(bucket + "/base/" + n) for n in lookups])(_direct_client())],
            ),
            "100 small reads (cold client)": (
                lambda: [(lambda o: [o.readbytes(n) for n in reads])(overlay())],
                lambda: [(lambda c: [c.cat_file(bucket + "/base/" + n) for n in reads])(_direct_client())],
            ),
        }
        print("%d objects in %d prefixes; median of %d runs" % (len(names), args.prefixes, args.repeat))
        print("%-38s %10s %10s %9s %9s %7s" % ("workload", "req ovl", "req s3fs", "s ovl", "s s3fs", "ratio"))
        for label, (through_overlay, direct) in workloads.items():
            overlay_requests, overlay_time = measure(server, through_overlay, args.repeat)
            direct_requests, direct_time = measure(server, direct, args.repeat)
            print(
                "%-38s %10d %10d %9.3f %9.3f %6.2fx"
                % (label, overlay_requests, direct_requests, overlay_time, direct_time, overlay_time / direct_time)
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
