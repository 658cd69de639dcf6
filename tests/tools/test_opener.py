"""``overlay://`` URLs through ``fs.open_fs``, with tar, zip, osfs and mem layers."""

from __future__ import annotations

from urllib.parse import quote

import fs
import pytest
from fs import errors
from fs.osfs import OSFS

from unionfs import OverlayFS
from unionfs.tools.opener import overlay_url, parse_overlay_url

from tests.support.archive_builders import build


@pytest.fixture
def layers(tmp_path, guard_lower):
    """A tar, a zip and a directory whose name needs quoting, all guarded."""
    folder = tmp_path / "odd, dir?name!x@y"
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "from-dir").write_text("dir")
    (folder / "shared.txt").write_text("dir wins")
    build(str(folder / "base.tar.gz"), {"etc/from-tar": b"tar", "shared.txt": b"tar loses"}, "tar.gz")
    build(str(folder / "extra.zip"), {"etc/from-zip": b"zip", "zip-only/z": b"z"}, "zip")
    guard_lower(OSFS(str(folder)))
    return folder


def test_open_fs_builds_an_overlay_from_nested_urls(layers):
    url = overlay_url(
        ["osfs://" + quote(str(layers)), "tar://" + quote(str(layers / "base.tar.gz")), str(layers / "extra.zip")],
        upper="mem://",
    )
    assert "%2C" in url and "%3F" in url and "%21" in url and "%40" in url  # the odd name is quoted
    with fs.open_fs(url) as overlay:
        assert isinstance(overlay, OverlayFS)
        assert sorted(overlay.listdir("etc")) == ["from-dir", "from-tar", "from-zip"]
        assert overlay.readtext("shared.txt") == "dir wins"
        overlay.writetext("etc/new", "upper")  # the mem:// upper takes writes
        assert overlay.readtext("etc/new") == "upper"


def test_plain_paths_and_a_directory_upper(layers, tmp_path):
    upper = tmp_path / "upper"
    url = overlay_url([str(layers / "extra.zip"), str(layers / "base.tar.gz")], upper=str(upper))
    with fs.open_fs(url) as overlay:
        overlay.writetext("zip-only/z", "changed")
    assert (upper / "zip-only" / "z").read_text() == "changed"
    with fs.open_fs(url) as again:  # the upper keeps the change, the zip does not
        assert again.readtext("zip-only/z") == "changed"
        assert again.changes().modified == ("/zip-only/z",)


def test_readable_unquoted_form_sub_path_and_nesting(layers):
    tar = str(layers / "base.tar.gz")
    url = "overlay://mem://,%s?upper=mem://" % overlay_url([tar]).split("://", 1)[1]
    with fs.open_fs(url) as overlay:
        assert overlay.readtext("etc/from-tar") == "tar"
    with fs.open_fs(overlay_url([tar]) + "!/etc") as sub:
        assert sorted(sub.listdir("/")) == ["from-tar"]
    inner = overlay_url([tar], upper="mem://")
    with fs.open_fs(overlay_url([inner, "zip://" + quote(str(layers / "extra.zip"))])) as nested:
        assert sorted(nested.listdir("etc")) == ["from-tar", "from-zip"]
        with pytest.raises(errors.ResourceReadOnly):
            nested.writetext("x", "no upper, read-only")


def test_round_trip_of_awkward_layer_urls():
    lowers = ["osfs:///a,b/c?d", "tar:///x y/+z.tar", "mem://", "overlay://mem://?upper=mem://"]
    assert parse_overlay_url(overlay_url(lowers, upper="osfs:///u&v=w")) == (lowers, "osfs:///u&v=w")


@pytest.mark.parametrize(
    "url, message",
    [("overlay://", "names no lower"), ("overlay://mem://?lower=mem://", "unknown parameter"), ("overlay://nope://x", "nope://")],
)
def test_bad_overlay_urls_fail_clearly(url, message):
    with pytest.raises(errors.CreateFailed, match=message):
        fs.open_fs(url)


def test_the_url_sets_the_copying_options(tmp_path) -> None:
    """``?redirect_dir=off&metacopy=off``: movedir of a lower directory copies it."""
    import fs as _fs
    from fs.osfs import OSFS as _OSFS

    (tmp_path / "low" / "d").mkdir(parents=True)
    (tmp_path / "low" / "d" / "f").write_text("f")
    (tmp_path / "up").mkdir()
    url = "overlay://%s?upper=%s&redirect_dir=off&metacopy=off" % (tmp_path / "low", tmp_path / "up")
    with _fs.open_fs(url) as overlay:
        overlay.movedir("d", "e", create=True)
    assert (tmp_path / "up" / "e" / "f").read_text() == "f"  # copied, not redirected
    with pytest.raises(errors.CreateFailed, match="on or off"):
        _fs.open_fs(url.replace("metacopy=off", "metacopy=maybe"))
    assert _OSFS(str(tmp_path / "low")).readtext("d/f") == "f"


def test_relative_layers_resolve_against_cwd(tmp_path, monkeypatch, guard_lower) -> None:
    """Issue 11 item 11: ``fs.open_fs('overlay://sub', cwd=...)`` resolves relative layer paths
    (plain, ``osfs://``, ``tar://``, ``zip://``, the upper too) against ``cwd``, as fs's own
    openers do, not against the process's working directory."""
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "plain.txt").write_text("plain")
    build(str(base / "l.tar"), {"from-tar": b"tar"}, "tar")
    build(str(base / "l.zip"), {"from-zip": b"zip"}, "zip")
    (base / "up").mkdir()
    guard_lower(OSFS(str(base / "sub")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    url = "overlay://sub,osfs://sub,tar://l.tar,zip://l.zip?upper=up"
    with fs.open_fs(url, cwd=str(base)) as overlay:
        assert sorted(overlay.listdir("/")) == ["from-tar", "from-zip", "plain.txt"]
        overlay.writetext("new.txt", "upper")
    assert (base / "up" / "new.txt").read_text() == "upper"
    assert not (elsewhere / "up").exists()
    with pytest.raises((errors.CreateFailed, fs.opener.errors.OpenerError)):
        fs.open_fs("overlay://sub", cwd=str(elsewhere))  # nothing called sub there
