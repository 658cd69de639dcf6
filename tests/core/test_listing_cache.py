"""The merged-listing cache and the basic-``scandir`` path: warm listings read no layer, and
never go stale after a write through the overlay."""

from __future__ import annotations

from typing import Callable, Dict, List

import pytest

import unionfs  # noqa: F401
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.wrapfs import WrapFS

from unionfs import OverlayFS
import unionfs.core.lookup as lookup_module
from unionfs.core.stack import Layer
from unionfs.testing import trees


class CountingFS(WrapFS):
    """A lower that counts the directory reads it serves."""

    def __init__(self, wrapped: FS) -> None:
        super().__init__(wrapped)
        self.scans = 0

    def scandir(self, path, namespaces=None, page=None):
        self.scans += 1
        return super().scandir(path, namespaces, page)


def build(guard_lower) -> List[FS]:
    top = trees.make_tree(MemoryFS(), {"m/f1": "f1", "m/f3": "f3", "m/f5": "f5", "m/shadowed": "top"})
    bottom = trees.make_tree(MemoryFS(), {
        "m/sub/deep": "deep", "m/f0": "f0", "m/f2": "f2", "m/f4": "f4", "m/shadowed": "bottom", "other/o": "o",
    })
    return [guard_lower(top), guard_lower(bottom)]


def all_listings(overlay: OverlayFS) -> Dict[str, List[str]]:
    """Sorted listdir and basic scandir (name, type) of every directory of the view."""
    result: Dict[str, List[str]] = {}
    pending = ["/"]
    while pending:
        directory = pending.pop()
        names = sorted(overlay.listdir(directory))
        scanned = sorted((info.name, info.is_dir) for info in overlay.scandir(directory))
        assert [name for name, _ in scanned] == names, directory
        result[directory] = ["%s%s" % (name, "/" if is_dir else "") for name, is_dir in scanned]
        pending += [directory.rstrip("/") + "/" + name for name, is_dir in scanned if is_dir]
    return result


CHANGES: Dict[str, Callable[[OverlayFS], None]] = {
    "create": lambda o: o.writetext("m/new", "n"),
    "remove lower": lambda o: o.remove("m/f0"),
    "remove upper": lambda o: o.remove("m/f1"),
    "remove shadowing": lambda o: o.remove("m/shadowed"),
    "removetree": lambda o: o.removetree("m/sub"),
    "makedir over whiteout": lambda o: (o.removetree("m/sub"), o.makedir("m/sub")),
    "make_opaque": lambda o: o.make_opaque("m"),
    "hide": lambda o: o.hide("other"),
    "move": lambda o: o.move("m/f0", "other/moved"),
    "movedir": lambda o: o.movedir("m/sub", "other/sub", create=True),
    "copy": lambda o: o.copy("other/o", "m/copied"),
    "replace file by dir": lambda o: (o.remove("m/f2"), o.makedir("m/f2"), o.writetext("m/f2/in", "i")),
    "removetree root": lambda o: o.removetree("/"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_warm_listings_follow_every_write(guard_lower, change):
    lowers = build(guard_lower)
    upper = MemoryFS()
    overlay = OverlayFS(lowers, upper=upper)
    before = all_listings(overlay)  # every listing cached
    CHANGES[change](overlay)
    warm = all_listings(overlay)
    assert warm == all_listings(OverlayFS(lowers, upper=upper))
    assert warm != before


def test_warm_listdir_reads_no_layer_index(guard_lower, monkeypatch):
    overlay = OverlayFS(build(guard_lower), upper=MemoryFS())
    first = overlay.listdir("m")
    calls = []
    original = Layer.dir
    monkeypatch.setattr(Layer, "dir", lambda self, path: calls.append(path) or original(self, path))
    assert overlay.listdir("m") == first
    assert calls == []
    overlay.writetext("m/late", "l")  # a change drops the listing: it is merged again
    assert sorted(overlay.listdir("m")) == sorted(first + ["late"])
    assert calls


def test_basic_scandir_reads_no_layer_and_matches_the_layers(guard_lower, tmp_path):
    disk = tmp_path / "lower"
    (disk / "m" / "sub").mkdir(parents=True)
    (disk / "m" / "disk-file").write_text("d")
    lowers = [CountingFS(layer) for layer in build(guard_lower)] + [CountingFS(OSFS(str(disk)))]
    overlay = OverlayFS(lowers, upper=MemoryFS())
    expected = {info.name: info.raw for layer in reversed(lowers) for info in layer.delegate_fs().scandir("m")}
    overlay.listdir("m")  # layer indexes and listing cached
    before = [layer.scans for layer in lowers]
    scanned = {info.name: info.raw for info in overlay.scandir("m")}
    assert [layer.scans for layer in lowers] == before  # basic infos come from the listing
    assert scanned == expected  # and are what the winning layer itself says
    assert next(iter(overlay.scandir("m", ["details"]))).has_namespace("details")
    assert [layer.scans for layer in lowers] != before  # other namespaces are read from the layers


def test_basic_scandir_of_a_lower_only_directory_reads_its_index_not_a_merged_listing(guard_lower, monkeypatch):
    overlay = OverlayFS(build(guard_lower), upper=MemoryFS())
    overlay.writetext("m/sub/up", "u")  # m/sub: one lower under an upper copy, two layers now
    overlay.makedir("fresh")  # upper only
    overlay.writetext("fresh/new", "n")
    again = OverlayFS([layer.fs for layer in overlay.stack.lowers], upper=overlay.stack.upper.fs)
    expected = {  # from the merged listings (listdir), each entry's type looked up on its own
        path: sorted((name, again.isdir(path + "/" + name)) for name in again.listdir(path)) for path in ("other", "fresh", "m/sub")
    }
    merged = []
    original = lookup_module.merge_listing
    monkeypatch.setattr(lookup_module, "merge_listing", lambda directory: merged.append(directory.path) or original(directory))
    cold = OverlayFS([layer.fs for layer in overlay.stack.lowers], upper=overlay.stack.upper.fs)
    for _round in range(2):
        for path, entries in expected.items():
            assert sorted((info.name, info.is_dir) for info in cold.scandir(path)) == entries
    # a lower's own directory is never merged: its index is its listing; the upper's fresh one
    # is, once (a cold lookup leaves the lowers below it to be asked when it is listed)
    assert merged == ["/fresh", "/m/sub"]
    cold.remove("fresh/new")  # the upper's index follows the change: so does the next scandir
    assert [info.name for info in cold.scandir("fresh")] == []
