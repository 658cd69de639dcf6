"""Packaging promises: ``import unionfs`` is silent; the wheel installs into a fresh venv
without changing what the user had (setuptools above all), carries its type information,
licence and project metadata, and every README example prints only its own output."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import zipfile
from typing import Iterator, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: a setuptools without pkg_resources (82 removed it), as a user's up-to-date venv has
NEWER_SETUPTOOLS = "84.2.1"


def test_import_prints_no_warning():
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import unionfs, fs.opener; fs.opener.registry.protocols"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def _run(*command: str, cwd: pathlib.Path = ROOT) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, "%s failed:\n%s%s" % (" ".join(command), result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    """The wheel of this checkout, built without its dependencies."""
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT))
    (built,) = out.glob("unionfs-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, wheel) -> Iterator[pathlib.Path]:
    """A new venv whose setuptools is newer than any fs 2.4.16 can use, with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    _run(str(python), "-m", "pip", "install", "-q", "setuptools==" + NEWER_SETUPTOOLS)
    _run(str(python), "-m", "pip", "install", "-q", str(wheel))
    yield python


def test_wheel_carries_type_information_licence_and_metadata(wheel) -> None:
    """Issue 11 item 14: ``py.typed`` (PEP 561), the MIT licence file and its metadata."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        licence = [name for name in names if name.endswith("LICENSE")]
        assert licence and "MIT License" in archive.read(licence[0]).decode()
    assert "unionfs/py.typed" in names
    assert "License: MIT" in text and "License-File: LICENSE" in text


def test_install_leaves_setuptools_as_it_was(fresh_venv) -> None:
    """Issue 11 item 9: installing unionfs must not downgrade the user's setuptools (it did,
    84 -> 81, while fs 2.4.16 was required everywhere)."""
    versions = _run(str(fresh_venv), "-c", "import importlib.metadata as m; print(m.version('setuptools'))")
    assert versions.strip() == NEWER_SETUPTOOLS
    check = subprocess.run([str(fresh_venv), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def readme_python_blocks() -> List[str]:
    """The ``.. code-block:: python`` examples of README.rst, dedented."""
    blocks: List[str] = []
    lines = (ROOT / "README.rst").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        body: List[str] = []
        for following in lines[number + 1 :]:
            if following and not following.startswith(" "):
                break
            body.append(following[4:])
        blocks.append("\n".join(body).strip("\n") + "\n")
    return blocks


def _imports(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if re.match(r"(import|from) \S+", line)) + "\n"


def test_readme_examples_print_only_their_output(fresh_venv, tmp_path) -> None:
    """Issue 11 item 9: every README example prints nothing but its own output in a fresh
    install (the quick start printed fs's pkg_resources warning). The self-contained ones run
    whole; the rest name the user's own files (an image layout, /srv/...), so their imports,
    which is where such a warning comes from, run on their own."""
    blocks = readme_python_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        if "overlay_factory" in block:
            continue  # the pytest plugin's example: examples/ holds it, run by test_pytest_plugin.py
        runnable = "/srv/" not in block and "image-layout/" not in block and "overlay.changes()" not in block
        runnable = runnable and "site.zip" not in block and "s3://" not in block  # a bucket of the user's
        source = block if runnable else _imports(block)
        result = subprocess.run([str(fresh_venv), "-c", source], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, "README example failed:\n%s\n%s" % (source, result.stderr)
        assert result.stderr == "" and result.stdout == "", "README example printed:\n%s%s\n%s" % (result.stdout, result.stderr, source)
