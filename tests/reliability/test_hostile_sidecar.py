"""Issue 10, item 13 (sidecar and error messages): bytes that are not UTF-8 in the sidecar are
a SidecarError (and a damaged lock record never makes an upper unopenable), journal entries
the API would refuse are refused instead of replayed, and the messages of unionfs's errors
survive braces in paths."""

from __future__ import annotations

import json
import os

import pytest

from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import OverlayFS, SidecarError, UnsupportedLayer, UpperInUse
from unionfs.core.sidecar import FORMAT_PATH, JOURNAL_DIR, LOCK_PATH
from unionfs.formats.archives import UnsafeArchive
from unionfs.formats.oci.blobs import LayerFormatError
from unionfs.testing import trees


@pytest.fixture
def layers():
    lower = trees.make_tree(MemoryFS(), {"a/b/": None, "a/f": "lower f"})
    upper = MemoryFS()
    OverlayFS(lower, upper).close()
    return lower, upper


def test_format_with_bytes_that_are_not_utf8_is_a_sidecar_error(layers):
    lower, upper = layers
    upper.writebytes(FORMAT_PATH, b"unionfs-sidecar \xff\xfe\n")
    with pytest.raises(SidecarError, match="not UTF-8") as raised:
        OverlayFS(lower, upper)
    assert FORMAT_PATH in str(raised.value)


def test_journal_entry_with_bytes_that_are_not_utf8_is_a_sidecar_error(layers):
    lower, upper = layers
    upper.makedir(JOURNAL_DIR, recreate=True)
    upper.writebytes(JOURNAL_DIR + "/e", b'{"operation": "\xff"}')
    upper.writetext(FORMAT_PATH, "unionfs-sidecar 2\n")
    with pytest.raises(SidecarError, match="not UTF-8") as raised:
        OverlayFS(lower, upper)
    assert JOURNAL_DIR + "/e" in str(raised.value)


@pytest.mark.parametrize("record", [b"\xff\xfe garbage", b"12 \xc3(", b"\x00\x00"])
def test_a_damaged_lock_record_does_not_make_the_upper_unopenable(tmp_path, record):
    (tmp_path / "low").mkdir()
    (tmp_path / "up").mkdir()
    OverlayFS(str(tmp_path / "low"), upper=str(tmp_path / "up")).close()
    with open(str(tmp_path / "up" / ".unionfs" / "lock"), "wb") as handle:
        handle.write(record)
    with OverlayFS(str(tmp_path / "low"), upper=OSFS(str(tmp_path / "up"))) as overlay:
        overlay.writetext("x", "x")  # taken over like a record that was never completed
    assert OSFS(str(tmp_path / "up")).readtext("x") == "x"


REFUSED_ENTRIES = {
    "movedir into itself": ({"operation": "movedir", "src": "/a", "dst": "/a/b/c"}, "into itself"),
    "movedir onto itself": ({"operation": "movedir", "src": "/a", "dst": "/a"}, "into itself"),
    "movedir of the root": ({"operation": "movedir", "src": "/", "dst": "/x"}, "into itself"),
    "destination in the sidecar": ({"operation": "movedir", "src": "/a", "dst": "/.unionfs/tree"}, "sidecar"),
    "source in the sidecar": ({"operation": "movedir", "src": "/.unionfs", "dst": "/x"}, "sidecar"),
    "not normal": ({"operation": "movedir", "src": "/a/../a", "dst": "/x"}, "normal"),
    "climbs out": ({"operation": "movedir", "src": "/..", "dst": "/x"}, "climbs out"),
    "kept directory in the sidecar": ({"operation": "movedir", "src": "/a", "dst": "/x",
                                       "kept": [["/.unionfs/tree", 1, 1]]}, "kept directory .* sidecar"),
    "kept directory not normal": ({"operation": "movedir", "src": "/a", "dst": "/x", "kept": [["x/../y", 1, 1]]},
                                  "kept directory .* normal"),
    "removetree below the root": ({"operation": "removetree", "src": "/a"}, "root only"),
    "discard below the root": ({"operation": "discard", "src": "/a"}, "root only"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_ENTRIES))
def test_journal_entries_the_api_would_refuse_are_not_replayed(layers, name):
    lower, upper = layers
    overlay = OverlayFS(lower, upper)
    overlay.writetext("a/new", "keep me")
    overlay.close()
    entry, complaint = REFUSED_ENTRIES[name]
    upper.makedir(JOURNAL_DIR, recreate=True)
    upper.writetext(JOURNAL_DIR + "/e", json.dumps(entry))
    upper.writetext(FORMAT_PATH, "unionfs-sidecar 2\n")
    with pytest.raises(SidecarError, match=complaint) as raised:
        OverlayFS(lower, upper)
    assert JOURNAL_DIR + "/e" in str(raised.value)
    assert upper.readtext("a/new") == "keep me"  # nothing was replayed


BRACED = "/srv/{x}/{path}/layer{0}.tar"


@pytest.mark.parametrize(
    "error",
    [
        UnsafeArchive(BRACED, "{member}", "has a '..' component"),
        UnsupportedLayer(msg="cannot open lower %r" % BRACED),
        UpperInUse(msg="the upper %r is in use by process 1 on {host}" % BRACED),
        LayerFormatError("%s: sparse member '{x}' is not supported" % BRACED),
    ],
    ids=lambda error: type(error).__name__,
)
def test_str_and_repr_of_errors_with_braces_in_paths(error):
    assert BRACED in str(error)
    assert type(error).__name__ in repr(error)
    assert "{x}" in repr(error)


def test_cli_error_with_braces_in_a_path_is_one_line(tmp_path, capsys):
    from unionfs.tools.cli import main

    bad = tmp_path / "{x}.tar"
    bad.write_bytes(b"not an archive at all" * 100)
    assert main(["list", "-l", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "{x}.tar" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_archive_with_braces_in_a_member_name_is_reported_cleanly(tmp_path):
    import io
    import tarfile

    path = str(tmp_path / "evil{0}.tar")
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("../{x}")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeArchive) as raised:
        OverlayFS(path)
    assert "../{x}" in str(raised.value) and os.path.basename(path) in repr(raised.value)
