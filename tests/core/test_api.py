"""The API surface: read-only overlays, meta, layers from URLs, closing, errors naming the
caller's path.

The ``lower`` fixture is a guarded MemoryFS (``/a/b/f.txt``, ``/a/g.txt``, ``/top.txt``,
``/empty/``); ``guard_lower`` fails the test if any lower changed by one byte. Split out of
the former ``tests/test_rules.py``; shared helpers in ``tests/support/rules.py``.
"""

from __future__ import annotations


import pytest

import unionfs  # noqa: F401
from fs import errors
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS


def test_read_only_overlay_refuses_every_write(lower):
    overlay = OverlayFS(lower)
    attempts = [
        lambda: overlay.writetext("new", "x"),
        lambda: overlay.openbin("top.txt", "r+"),
        lambda: overlay.remove("top.txt"),
        lambda: overlay.removedir("empty"),
        lambda: overlay.makedir("d"),
        lambda: overlay.setinfo("top.txt", {"details": {"modified": 1}}),
        lambda: overlay.move("top.txt", "x"),
        lambda: overlay.movedir("a", "x", create=True),
        lambda: overlay.removetree("a"),
        lambda: overlay.hide("a"),
        lambda: overlay.make_opaque("a"),
    ]
    for attempt in attempts:
        with pytest.raises(errors.ResourceReadOnly):
            attempt()
    assert overlay.getmeta()["read_only"] is True
    assert overlay.readtext("top.txt") == "lower top"


def test_meta_and_no_system_path(overlay):
    meta = overlay.getmeta()
    assert meta["read_only"] is False and meta["thread_safe"] is True
    assert meta["supports_rename"] is False
    with pytest.raises(errors.NoSysPath):
        overlay.getsyspath("top.txt")
    assert not overlay.hassyspath("top.txt")


def test_close_leaves_passed_layers_open_and_closes_url_layers(lower, tmp_path):
    upper = MemoryFS()
    overlay = OverlayFS([lower, "mem://"], upper)
    url_layer = overlay._lower_layers()[1].fs
    overlay.close()
    assert not lower.isclosed() and not upper.isclosed()
    assert url_layer.isclosed()


def test_layers_from_urls(tmp_path):
    (tmp_path / "lower").mkdir()
    (tmp_path / "lower" / "hello.txt").write_text("hi")
    overlay = OverlayFS("osfs://%s" % (tmp_path / "lower"), "osfs://%s" % (tmp_path / "upper"))
    overlay.writetext("new.txt", "n")
    assert sorted(overlay.listdir("/")) == ["hello.txt", "new.txt"]
    assert (tmp_path / "upper" / "new.txt").read_text() == "n"
    overlay.close()


def test_errors_name_the_callers_path(overlay):
    with pytest.raises(errors.ResourceNotFound) as caught:
        overlay.readbytes("a/missing")
    assert caught.value.path == "a/missing"


def test_upper_cannot_be_one_of_its_lowers(lower):
    with pytest.raises(unionfs.UnsupportedLayer):
        OverlayFS(lower, lower)


def test_setinfo_the_upper_cannot_hold_is_unsupported_naming_the_path(overlay):
    """MemoryFS cannot set its own root's times (it answers ResourceNotFound for '/'): the
    overlay says Unsupported, naming the caller's path, instead of 'not found'."""
    with pytest.raises(errors.Unsupported) as caught:
        overlay.setinfo("/", {"details": {"modified": 5}})
    assert caught.value.path == "/"
    assert overlay.exists("/")
