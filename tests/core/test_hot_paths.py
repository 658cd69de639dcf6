"""Hot paths make few calls to the layers, and their shortcuts change no result."""

from __future__ import annotations

from typing import List

import pytest

import unionfs.overlay as overlay_module
from fs import errors
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.wrapfs import WrapFS

from unionfs import OverlayFS
from unionfs.core.stack import Layer
from unionfs.testing import trees


class CallLog(WrapFS):
    """An upper that logs the names of the FS methods called on it."""

    def __init__(self, wrapped: FS) -> None:
        super().__init__(wrapped)
        self.calls: List[str] = []

    def makedirs(self, path, permissions=None, recreate=False):
        self.calls.append("makedirs")
        return super().makedirs(path, permissions, recreate)

    def getinfo(self, path, namespaces=None):
        self.calls.append("getinfo")
        return super().getinfo(path, namespaces)

    def openbin(self, path, mode="r", buffering=-1, **options):
        self.calls.append("openbin")
        return super().openbin(path, mode, buffering, **options)


def test_a_whiteout_beside_others_is_one_upper_call(guard_lower):
    lower = guard_lower(trees.make_tree(MemoryFS(), {"d/sub/f%d" % index: "f" for index in range(3)}))
    upper = CallLog(MemoryFS())
    overlay = OverlayFS(lower, upper=upper)
    overlay.remove("d/sub/f0")  # the first record in d/sub makes its record directories
    assert "makedirs" in upper.calls
    upper.calls.clear()
    overlay.remove("d/sub/f1")
    assert upper.calls == ["openbin"]  # no makedirs, no existence check: the record file only
    assert sorted(overlay.listdir("d/sub")) == ["f2"]
    assert sorted(OverlayFS(lower, upper=upper).listdir("d/sub")) == ["f2"]  # recorded, not just cached


def test_a_cold_listing_reads_each_layer_index_a_bounded_number_of_times(guard_lower, monkeypatch):
    top, bottom = MemoryFS(), MemoryFS()
    for index in range(60):
        (top if index % 2 else bottom).makedirs("m", recreate=True)
        (top if index % 2 else bottom).writetext("m/f%d" % index, "f")
    upper = MemoryFS()
    overlay = OverlayFS([guard_lower(top), guard_lower(bottom)], upper=upper)
    overlay.writetext("m/up", "u")
    overlay.remove("m/f0")
    cold = OverlayFS([top, bottom], upper=upper)
    calls: List[str] = []
    original = Layer.dir
    monkeypatch.setattr(Layer, "dir", lambda self, path: calls.append(path) or original(self, path))
    names = cold.listdir("m")
    assert sorted(names) == sorted(["up"] + ["f%d" % index for index in range(1, 60)])
    assert 0 < calls.count("/m") <= 2 * 3  # per layer, not per name and layer


def test_paths_are_validated_once_and_still_refused_every_time(guard_lower, monkeypatch):
    lower = trees.make_tree(MemoryFS(), {"a/b/f": "f"})
    overlay = OverlayFS(guard_lower(lower), upper=MemoryFS())
    normalised: List[str] = []
    original = overlay_module.normpath
    monkeypatch.setattr(overlay_module, "normpath", lambda path: normalised.append(path) or original(path))
    for _ in range(3):
        assert overlay.getinfo("a/./b//f").name == "f"
        assert overlay.readtext("/a/b/f") == "f"
    # once per spelling that needs it: an absolute path with no "//", "/." or final "/" is normal already
    assert normalised == ["a/./b//f"]
    for spelling in ("a/b/f", "/a/b/../b/f", "/a//b/f", "/./a/b/f", "/a/b/./f"):
        assert overlay.getinfo(spelling).name == "f"
        assert overlay.validatepath(spelling) == "/a/b/f"
    assert overlay.validatepath("/a/b/") == "/a/b"
    assert overlay.validatepath("/a/.b") == "/a/.b"
    for _ in range(2):  # refusals are never remembered
        with pytest.raises(errors.InvalidCharsInPath):
            overlay.exists("a/\0")
        with pytest.raises(TypeError):
            overlay.exists(b"a/b/f")
    overlay.close()
    with pytest.raises(errors.FilesystemClosed):
        overlay.getinfo("a/./b//f")


class NameLog(WrapFS):
    """A layer that logs which paths it is asked about and which directories it lists."""

    def __init__(self, wrapped: FS) -> None:
        super().__init__(wrapped)
        self.asked: List[str] = []
        self.listed: List[str] = []

    def getinfo(self, path, namespaces=None):
        self.asked.append(path)
        return super().getinfo(path, namespaces)

    def scandir(self, path, namespaces=None, page=None):
        self.listed.append(path)
        return super().scandir(path, namespaces, page)


def test_a_cold_lookup_asks_for_the_name_and_lists_no_directory(guard_lower, tmp_path):
    """Issue 11: the first getinfo of a name in a large directory read the whole directory
    of every layer (18,037 entries for one name of /usr/lib/x86_64-linux-gnu)."""
    lower = trees.make_tree(MemoryFS(), {"big/f%d" % index: "f" for index in range(300)})
    logged = NameLog(guard_lower(lower))
    upper = NameLog(MemoryFS())
    overlay = OverlayFS(logged, upper=upper)
    upper.listed.clear()  # (opening checks the sidecar's staging area)
    assert overlay.getinfo("big/f7").name == "f7" and not overlay.exists("big/nope")
    assert logged.listed == [] and [path for path in upper.listed if not path.startswith("/.unionfs/")] == []
    assert upper.listed == ["/.unionfs/tree"]  # which record kinds the root has: once, not per name
    assert logged.asked.count("/big/f7") <= 2  # the lookup, and the getinfo it answers


def test_a_cold_lookup_of_a_top_file_asks_no_lower_below_it(guard_lower):
    """Issue 11: at 500 lowers one cold lookup of a top-layer file read every lower's directory."""
    lowers = []
    for position in range(40):
        layer = trees.make_tree(MemoryFS(), {"d/own%d" % position: "o", **({"d/top": "t"} if position == 0 else {})})
        lowers.append(NameLog(guard_lower(layer)))
    overlay = OverlayFS(lowers, upper=MemoryFS())
    assert overlay.readtext("d/top") == "t"
    assert [layer for layer in lowers[1:] if "/d/top" in layer.asked] == []
    assert all(layer.listed == [] for layer in lowers)


def test_a_cold_lookup_through_a_shared_directory_is_flat_in_the_lowers_below(guard_lower):
    """Issue 11: a cold lookup of /d/top resolved /d itself in every lower (500 stats at 500
    lowers); the lowers below the one that answers are now asked nothing, and are asked when a
    name needs them or the directory is listed, with the same answers as asked at once."""
    lowers = []
    for position in range(40):
        layer = MemoryFS()
        layer.makedirs("d/sub")
        layer.writetext("d/own%d" % position, "o%d" % position)
        layer.writetext("d/sub/s%d" % position, "s")
        if position == 0:
            layer.writetext("d/top", "t")
        if position == 30:
            layer.writetext("d/sub/deep", "deep")
        lowers.append(NameLog(guard_lower(layer)))
    overlay = OverlayFS(lowers, upper=MemoryFS())
    assert overlay.readtext("d/top") == "t"
    assert overlay.getinfo("d/sub").is_dir
    assert [layer for layer in lowers[1:] if layer.asked] == []
    # a name the top layer does not have is asked down the layers, lazy ancestors first
    assert overlay.readtext("d/sub/deep") == "deep" and overlay.readtext("d/own39") == "o39"
    assert not overlay.exists("d/own40") and not overlay.exists("d/sub/nothing")
    assert sorted(overlay.listdir("d/sub")) == sorted(["deep"] + ["s%d" % index for index in range(40)])
    overlay.remove("d/own0")  # a lower has it: a whiteout (lower_positive of a lazy parent's child)
    assert "own0" not in overlay.listdir("d") and len(overlay.listdir("d")) == 41
    cold = OverlayFS(lowers, upper=overlay._upper.fs)  # type: ignore[union-attr]
    assert sorted(cold.listdir("d")) == sorted(overlay.listdir("d"))


def test_whether_a_lower_has_an_upper_entry_is_asked_only_to_remove_it(guard_lower):
    """The upper decides an entry it has; a lower is asked whether it has the name too only
    when the answer matters (a removal needs a whiteout iff one does)."""
    lower = trees.make_tree(MemoryFS(), {"d/shadowed": "lower"})
    logged = NameLog(guard_lower(lower))
    overlay = OverlayFS(logged, upper=MemoryFS())
    overlay.writetext("d/shadowed", "upper")
    overlay.writetext("d/mine", "upper only")
    cold = OverlayFS(logged, upper=overlay._upper.fs)  # type: ignore[union-attr]
    logged.asked.clear()
    assert cold.readtext("d/shadowed") == "upper" and cold.readtext("d/mine") == "upper only"
    assert "/d/shadowed" not in logged.asked and "/d/mine" not in logged.asked
    cold.remove("d/shadowed")
    cold.remove("d/mine")
    assert "/d/shadowed" in logged.asked  # asked now: it needs a whiteout
    assert cold.listdir("d") == [] and OverlayFS(logged, upper=overlay._upper.fs).listdir("d") == []  # type: ignore[union-attr]


class NetworkLog(NameLog):
    """A layer that says it is a network filesystem (as an S3 bucket does)."""

    def getmeta(self, namespace="standard"):
        meta = dict(super().getmeta(namespace))
        meta["network"] = True
        return meta


def test_a_hot_directory_of_a_network_layer_is_listed_once_instead(guard_lower):
    """On a network layer a name costs a request, a listing many names per request: after
    ``HOT_AFTER`` cold names of one directory, its listing answers the rest."""
    from unionfs.core.stack import HOT_AFTER

    lower = trees.make_tree(MemoryFS(), {"d/f%d" % index: "f" for index in range(3 * HOT_AFTER)})
    logged = NetworkLog(guard_lower(lower))
    overlay = OverlayFS(logged, upper=MemoryFS())
    for index in range(3 * HOT_AFTER):
        assert overlay.exists("d/f%d" % index)
    assert logged.listed == ["/d"]
    assert len([path for path in logged.asked if path.startswith("/d/")]) == HOT_AFTER
