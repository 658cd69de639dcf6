"""Per-test setup and teardown cost of the ``overlay_factory`` fixture versus template size.

Runs a generated test module (40 tests, each writing one file into a fresh overlay) under
pytest for templates of 10 and 10,000 files, as a directory and as a tar archive, and
prints the median setup and teardown time per test (the template is opened and
fingerprinted once, inside the first test's first ``overlay_factory`` call, and fully
checked again in the last test's teardown, reported apart).

    .venv/bin/python benchmarks/overlay_factory_cost.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tarfile
import tempfile
import textwrap
from typing import Dict, List

import pytest

TESTS = 40


class Durations:
    """A pytest plugin object that records setup and teardown durations per test."""

    def __init__(self) -> None:
        self.times: Dict[str, List[float]] = {"setup": [], "teardown": []}

    def pytest_runtest_logreport(self, report) -> None:  # type: ignore[no-untyped-def]
        if report.when in self.times:
            self.times[report.when].append(report.duration)


def make_template(root: str, files: int) -> str:
    template = os.path.join(root, "template-%d" % files)
    for number in range(files):
        folder = os.path.join(template, "d%03d" % (number % 100))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "f%05d.txt" % number), "w") as handle:
            handle.write("x" * 200)
    return template


def measure(root: str, template: str) -> Dict[str, float]:
    # a new module name per run: pytest.main in one process would reuse an imported module
    module = os.path.join(root, "test_generated_%s.py" % os.path.basename(template).replace(".", "_").replace("-", "_"))
    with open(module, "w") as handle:
        handle.write(textwrap.dedent(
            """
            import pytest

            @pytest.mark.parametrize("number", range(%d))
            def test_write(overlay_factory, number):
                overlay = overlay_factory(%r)
                overlay.writetext("d000/new-%%d.txt" %% number, "new")
                assert len(overlay.changes()) == 1
            """ % (TESTS, template)
        ))
    durations = Durations()
    code = pytest.main(["-q", "-p", "no:cacheprovider", module], plugins=[durations])
    assert code == 0, code
    setup, teardown = durations.times["setup"], durations.times["teardown"]
    return {
        "setup median": statistics.median(setup[1:]) * 1000,
        "teardown median": statistics.median(teardown[:-1]) * 1000,
        "last teardown (session check)": teardown[-1] * 1000,
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for files in (10, 10_000):
            directory = make_template(root, files)
            archive = directory + ".tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(directory, arcname=".")
            for kind, template in (("directory", directory), ("tar", archive)):
                rows.append((files, kind, measure(root, template)))
    print("\nfiles   kind        " + "  ".join("%-30s" % key for key in rows[0][2]), file=sys.stderr)
    for files, kind, values in rows:
        print("%-7d %-11s " % (files, kind) + "  ".join("%-30s" % ("%.2f ms" % value) for value in values.values()),
              file=sys.stderr)


if __name__ == "__main__":
    main()
