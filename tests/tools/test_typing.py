"""The annotations are checked and shipped: ``mypy unionfs`` is clean, the wheel has ``py.typed``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mypy_reports_no_error():
    done = subprocess.run(
        [sys.executable, "-m", "mypy"],  # files and settings: the [mypy] section of setup.cfg
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.startswith("Success: no issues found"), done.stdout


def test_the_wheel_ships_py_typed_and_every_module(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), ROOT],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    with zipfile.ZipFile(str(tmp_path / wheel)) as archive:
        names = set(archive.namelist())
    assert "unionfs/py.typed" in names
    package = os.path.join(ROOT, "unionfs")
    modules = {
        os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
        for folder, _, files in os.walk(package)
        for name in files
        if name.endswith(".py")
    }
    assert modules <= names, sorted(modules - names)
