"""Construction failures leave an overlay that closes quietly."""

from __future__ import annotations

import gc
import sys

import pytest

import unionfs
from unionfs import OverlayFS


def test_failed_construction_is_garbage_collected_without_error(monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(unionfs.UnsupportedLayer):
        OverlayFS("osfs:///definitely/not/here")
    gc.collect()
    assert [str(item.exc_value) for item in unraisable] == []


@pytest.mark.parametrize("url", ["no-such-protocol://nothing", "://nothing"])
def test_bad_layer_urls_raise_an_fs_error_naming_the_url(url):
    with pytest.raises(unionfs.UnsupportedLayer, match=url.replace("/", ".")):
        OverlayFS(url)
