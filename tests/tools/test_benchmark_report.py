"""The mount benchmark's table: every row's ratios, with the optional systems beside."""

from benchmarks import mount as bench


def test_the_report_gives_every_row_its_ratios_with_a_baseline_and_the_trivial_floor() -> None:
    results = {
        "sequential read": {"raw": 1.0, "kernel": 1.0, "fuse-overlayfs": 2.0, "unionfs": 2.5, bench.BASELINE: 4.0},
        "tar x": {"raw": 1.0, "kernel": 1.0, "fuse-overlayfs": 1.0, "unionfs": 3.0, bench.BASELINE: 5.0, bench.TRIVIAL: 2.0},
    }
    table = bench.report(results, "quick").splitlines()
    assert table[0].endswith("| unionfs / fuse-overlayfs | baseline / fuse-overlayfs | trivial / fuse-overlayfs |")
    assert table[2].endswith("| 1.25x (throughput 0.80x) | 2.00x (throughput 0.50x) | - |")
    assert table[3].endswith("| 3.00x | 5.00x | 2.00x |")
