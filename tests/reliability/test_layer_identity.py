"""Issue 10, items 1, 2 and 8: one identity function recognises every spelling of a layer;
the stack refuses overlapping layers, commit refuses a target that would rewrite a layer,
and the layer objects the caller passed stay alive."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from fs.memoryfs import MemoryFS
from fs.osfs import OSFS
from fs.subfs import SubFS
from fs.tarfs import TarFS
from fs.wrap import WrapReadOnly
from fs.zipfs import ZipFS

from unionfs import OverlayFS, UnsupportedLayer
from unionfs.core.identity import identity, overlaps, same
from unionfs.formats.archives import open_archive


@pytest.fixture
def archive(tmp_path):
    path = str(tmp_path / "z.zip")
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("a.txt", "a")
        handle.writestr("keep.txt", "keep")
        handle.writestr("sub/s.txt", "s")
    return path


def _zip_names(path):
    with zipfile.ZipFile(path) as handle:
        return sorted(handle.namelist())


def test_identity_recognises_every_spelling_of_an_archive(archive, monkeypatch, tmp_path):
    monkeypatch.chdir(str(tmp_path))
    reference = identity(archive)
    spellings = [
        "z.zip",
        "./z.zip",
        "zip://z.zip",
        "zip://" + archive,
        "zip://" + archive + "!/",
        open_archive(archive),
        ZipFS(archive),
    ]
    os.symlink(archive, str(tmp_path / "link.zip"))
    spellings.append(str(tmp_path / "link.zip"))
    for spelling in spellings:
        assert same(identity(spelling), reference), spelling
    inside = identity("zip://z.zip!/sub")
    assert overlaps(inside, reference) and not same(inside, reference)
    assert overlaps(identity(open_archive(archive).opendir("sub")), reference)


def test_identity_recognises_every_spelling_of_a_directory(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    d = str(tmp_path / "d")
    reference = identity(OSFS(d))
    for spelling in [d, d + "/", "osfs://" + d, OSFS(d + "/sub/.."), WrapReadOnly(OSFS(d)), OSFS(str(tmp_path)).opendir("d")]:
        assert same(identity(spelling), reference), spelling
    for inside in [OSFS(d).opendir("sub"), OSFS(d + "/sub"), d + "/sub", "zip://" + d + "/x.zip"]:
        found = identity(inside)
        assert overlaps(found, reference) and not same(found, reference), inside
    assert not overlaps(identity(str(tmp_path / "other")), reference)
    assert not overlaps(identity(str(tmp_path / "dx")), reference)  # a name that merely starts alike


def test_identity_of_fs_objects_without_a_system_path():
    memory = MemoryFS()
    memory.makedir("x")
    assert same(identity(memory), identity(SubFS(memory, "/")))
    assert overlaps(identity(memory), identity(memory.opendir("x")))
    assert not overlaps(identity(memory), identity(MemoryFS()))
    assert identity("mem://") is None  # a new FS each time it is opened: nothing to compare


# -- item 1: commit into a spelling of a lower -------------------------------------------------


@pytest.mark.parametrize("spelling", ["zip://{0}", "{0}", "zip://{0}!/", "zip://{0}!/sub"])
def test_item1_commit_into_a_lower_archive_url_is_refused(archive, spelling):
    overlay = OverlayFS(archive, upper=MemoryFS())
    overlay.remove("a.txt")
    overlay.writetext("b.txt", "b")
    before = open(archive, "rb").read()
    for into_lower in (False, True):
        with pytest.raises(Exception) as raised:
            overlay.commit(spelling.format(archive), into_lower=into_lower)
        assert "lower 0" in str(raised.value) and "z.zip" in str(raised.value)
    assert open(archive, "rb").read() == before
    assert overlay.readtext("b.txt") == "b"  # nothing was committed, so nothing was discarded


def test_item1_commit_into_a_directory_inside_a_lower_is_refused(tmp_path):
    (tmp_path / "low" / "sub").mkdir(parents=True)
    (tmp_path / "low" / "sub" / "f").write_text("lower")
    overlay = OverlayFS(str(tmp_path / "low"), upper=MemoryFS())
    overlay.writetext("sub/f", "changed")
    for target in [str(tmp_path / "low" / "sub"), OSFS(str(tmp_path / "low")).opendir("sub"), "osfs://" + str(tmp_path / "low" / "sub")]:
        with pytest.raises(Exception, match="lies inside lower 0"):
            overlay.commit(target, into_lower=True)
    assert (tmp_path / "low" / "sub" / "f").read_text() == "lower"


def test_item1_commit_into_the_lower_by_another_spelling_discards_the_upper(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "f").write_text("lower")
    overlay = OverlayFS(OSFS(str(tmp_path / "low")), upper=MemoryFS())
    overlay.writetext("f", "changed")
    with pytest.raises(Exception, match="into_lower=True"):
        overlay.commit("osfs://" + str(tmp_path / "low"))
    assert (tmp_path / "low" / "f").read_text() == "lower"
    overlay.commit(str(tmp_path / "low") + "/", into_lower=True)
    assert (tmp_path / "low" / "f").read_text() == "changed"
    assert not overlay.changes()  # the upper was discarded


def test_item1_commit_into_the_upper_by_another_spelling_is_refused(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "up" / "d").mkdir(parents=True)
    overlay = OverlayFS(str(tmp_path / "low"), upper=OSFS(str(tmp_path / "up")))
    for target in [str(tmp_path / "up"), str(tmp_path / "up" / "d"), str(tmp_path)]:
        with pytest.raises(Exception, match="upper"):
            overlay.commit(target)


def test_item1_cli_commit_into_its_own_tar_lower_fails(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("base")
    base = str(tmp_path / "base.tar.gz")
    with tarfile.open(base, "w:gz") as handle:
        handle.add(str(source / "f"), "f")
    before = open(base, "rb").read()
    result = subprocess.run(
        [sys.executable, "-m", "unionfs", "commit", "-l", base, "-u", str(tmp_path / "U"), "tar://" + base],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert result.returncode != 0
    assert "lower 0" in result.stderr and "base.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr
    assert open(base, "rb").read() == before


# -- item 2: overlapping layers ---------------------------------------------------------------


def test_item2_an_upper_that_is_its_own_lower_is_refused(tmp_path):
    d = str(tmp_path / "d")
    os.makedirs(d + "/sub")
    for upper in [OSFS(d), d, OSFS(d).opendir("sub"), d + "/sub", str(tmp_path), OSFS(str(tmp_path))]:
        with pytest.raises(UnsupportedLayer, match="overlapping layers") as raised:
            OverlayFS(OSFS(d), upper=upper)
        assert "lower 0" in str(raised.value) and d in str(raised.value)
    assert os.listdir(d) == ["sub"]  # no sidecar was written into the lower


def test_item2_an_upper_inside_an_fs_object_lower_is_refused():
    memory = MemoryFS()
    memory.makedir("x")
    with pytest.raises(UnsupportedLayer, match="overlapping layers"):
        OverlayFS(memory, upper=memory.opendir("x"))
    with pytest.raises(UnsupportedLayer, match="overlapping layers"):
        OverlayFS(memory.opendir("x"), upper=memory)
    assert memory.listdir("/") == ["x"]


def test_item2_an_upper_holding_a_lower_archive_is_refused(tmp_path, archive):
    with pytest.raises(UnsupportedLayer, match="contains lower 0"):
        OverlayFS(archive, upper=str(tmp_path))


def test_item2_separate_layers_are_accepted(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "lowx").mkdir()
    OverlayFS(str(tmp_path / "low"), upper=str(tmp_path / "lowx")).close()


# -- item 8: layer objects stay alive ------------------------------------------------------------


@pytest.mark.parametrize("reader", [ZipFS, TarFS], ids=["ZipFS", "TarFS"])
def test_item8_a_layer_fs_object_survives_garbage_collection(tmp_path, archive, reader):
    path = archive
    if reader is TarFS:
        path = str(tmp_path / "t.tar")
        with tarfile.open(path, "w") as handle:
            handle.add(str(tmp_path / "z.zip"), "keep.txt")
    overlay = OverlayFS([reader(path)], upper=MemoryFS())
    gc.collect()
    assert overlay.readbytes("keep.txt")
    overlay.close()
