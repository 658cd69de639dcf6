"""Reliability suite: prints how many injection points each crash test exercised."""

from __future__ import annotations

from tests.support.reliability_support import COUNTS, INJECTION_POINTS


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: D103
    if COUNTS:
        terminalreporter.section("real kills, lock races, power cuts, fsyncs")
        for name, counted in COUNTS.items():
            terminalreporter.write_line("%-50s %s" % (name, counted))
    if not INJECTION_POINTS:
        return
    terminalreporter.section("crash consistency: injection points per operation")
    total = 0
    for operation, (points, modes) in INJECTION_POINTS.items():
        terminalreporter.write_line("%-40s %4d points x %d modes" % (operation, points, modes))
        total += points * modes
    terminalreporter.write_line("%-40s %4d runs" % ("total", total))
