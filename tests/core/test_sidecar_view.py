"""The sidecar in the view: invisible, its name reserved at the root only.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte. Split out of
the former ``tests/test_rules.py``; shared helpers in ``tests/support/rules.py``.
"""

from __future__ import annotations

import io

import pytest

import unionfs  # noqa: F401
from fs import errors

from unionfs import ReservedPath


def test_sidecar_invisible_in_the_merged_view(overlay):
    overlay.remove("top.txt")
    assert ".unionfs" not in overlay.listdir("/")
    assert not overlay.exists("/.unionfs")
    assert not any(".unionfs" in path for path in overlay.walk.files("/"))
    rendered = io.StringIO()
    overlay.tree(file=rendered)
    assert ".unionfs" not in rendered.getvalue()


def test_sidecar_reserved_name_refused(overlay):
    for attempt in (
        lambda: overlay.makedir("/.unionfs"),
        lambda: overlay.writetext("/.unionfs", "x"),
        lambda: overlay.move("top.txt", "/.unionfs"),
    ):
        with pytest.raises(ReservedPath) as caught:
            attempt()
        assert ".unionfs" in str(caught.value)
    with pytest.raises(errors.ResourceNotFound):
        overlay.getinfo("/.unionfs/FORMAT")


def test_sidecar_name_allowed_below_the_root(overlay):
    overlay.makedir("a/.unionfs")
    overlay.writetext("a/.unionfs/x", "fine")
    assert overlay.readtext("a/.unionfs/x") == "fine"


@pytest.mark.parametrize("path, parts", [
    ("/a", ["a"]), ("/a/b c/d", ["a", "b c", "d"]), ("/.a/b", [".a", "b"]), ("/a/..b/c.", ["a", "..b", "c."]),
    ("/a/./b", ["a", "b"]), ("/a//b/", ["a", "b"]), ("/a/b/../c", ["a", "c"]),
])
def test_a_record_directory_is_its_path_component_by_component(path, parts):
    """M(D) of a normal path (made by a replace) and of any other (component by component)."""
    from unionfs.core.sidecar import TREE_DIR, record_dir

    assert record_dir(path) == TREE_DIR + "".join("/d/" + part for part in parts)
