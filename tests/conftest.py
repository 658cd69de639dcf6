"""Shared test machinery: Hypothesis profiles, lower-layer guards, the kernel gate."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Callable, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, settings

import unionfs  # noqa: F401  (imports fs quietly first)
from fs import errors
from unionfs.testing import trees
from fs.base import FS
from fs.memoryfs import MemoryFS

settings.register_profile("dev", max_examples=30, deadline=None)
# ci: hundreds of sequences of dozens of steps, the same ones on every run (derandomized), so a
# submission's CI verdict is reproducible; soak: the same size with fresh random seeds, for
# exploring new ground (run it by hand, with UNIONFS_KERNEL_EXAMPLES for longer kernel runs).
settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    derandomize=True,
)
settings.register_profile("soak", settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def snapshot(layer: FS) -> Dict[str, str]:
    """Every path of ``layer`` (hidden sidecar included) with its type and a content hash; on
    disk with ``lstat``, so a symbolic link is recorded as itself (its target), never followed."""
    try:
        root = layer.getsyspath("/")
    except errors.NoSysPath:
        root = None
    if root is not None:
        return trees.disk_snapshot(root)
    return trees.snapshot(layer, trees.digest, namespaces=["link"], sidecar=True)


class LowerGuard:
    """Remembers lowers and asserts at teardown that not one byte of them changed."""

    def __init__(self) -> None:
        self._watched: List = []

    def __call__(self, layer: FS) -> FS:
        self._watched.append((layer, snapshot(layer)))
        return layer

    def check(self) -> None:
        for layer, before in self._watched:
            assert snapshot(layer) == before, "a lower layer was modified: %r" % (layer,)


@pytest.fixture
def guard_lower() -> Iterator[Callable[[FS], FS]]:
    """``guard_lower(fs)`` registers a lower; the test fails if it changed by teardown."""
    guard = LowerGuard()
    yield guard
    guard.check()


#: the small lower of the ``lower`` fixture (and of tests that cannot take fixtures)
LOWER = {"a/b/f.txt": "lower f", "a/g.txt": "lower g", "top.txt": "lower top", "empty/": None}


@pytest.fixture
def lower(guard_lower) -> FS:
    """A small guarded lower: ``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``, ``/empty/``."""
    return guard_lower(trees.make_tree(MemoryFS(), LOWER))


def kernel_overlay_available() -> str:
    """Empty if ``mount -t overlay`` works here, else the reason it does not."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "overlayfs needs Linux"
    if os.geteuid() != 0:
        return "mounting overlayfs needs root"
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: os.path.join(tmp, name) for name in ("l", "u", "w", "m")}
        for path in dirs.values():
            os.mkdir(path)
        options = "lowerdir=%(l)s,upperdir=%(u)s,workdir=%(w)s" % dirs
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, dirs["m"]], capture_output=True, text=True
        )
        if mounted.returncode != 0:
            return "mount -t overlay failed: %s" % (mounted.stderr.strip() or mounted.returncode)
        subprocess.run(["umount", dirs["m"]], check=True)
    return ""


@pytest.fixture(scope="session")
def kernel_overlay() -> None:
    """Skip (or, with UNIONFS_REQUIRE_KERNEL=1 as in CI, fail) where overlayfs cannot be mounted."""
    reason = kernel_overlay_available()
    if reason:
        if os.environ.get("UNIONFS_REQUIRE_KERNEL") == "1":
            pytest.fail("kernel overlayfs required (UNIONFS_REQUIRE_KERNEL=1) but unavailable: " + reason)
        pytest.skip("kernel overlayfs unavailable: " + reason)
