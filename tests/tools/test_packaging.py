"""Packaging promises: ``import unionfs`` is silent whatever setuptools provides pkg_resources."""

from __future__ import annotations

import subprocess
import sys


def test_import_prints_no_warning():
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import unionfs, fs.opener; fs.opener.registry.protocols"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
