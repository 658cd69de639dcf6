"""The command line, run as a subprocess against real layers."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List

import pytest
from fs.osfs import OSFS

from unionfs import OverlayFS

from tests.support.archive_builders import build
from unionfs.testing import trees


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unionfs", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result
    lines: List[str] = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("unionfs: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def stack(tmp_path, guard_lower):
    """A tar.gz lower, a directory lower and a directory upper with some changes in it."""
    layers = tmp_path / "layers"
    (layers / "base" / "etc").mkdir(parents=True)
    (layers / "base" / "etc" / "motd").write_text("hello from base\n")
    build(str(layers / "image.tar.gz"), {"etc/app.conf": b"debug = false\n", "bin/tool": b"#!/bin/sh\n", "doomed": b"x"}, "tar.gz")
    guard_lower(OSFS(str(layers)))
    upper = tmp_path / "upper"
    with OverlayFS([str(layers / "image.tar.gz"), str(layers / "base")], upper=str(upper)) as overlay:
        overlay.writetext("etc/app.conf", "debug = true\n")
        overlay.makedir("srv")
        overlay.writetext("srv/index.html", "<h1>hi</h1>\n")
        overlay.remove("doomed")
    return ["-l", str(layers / "image.tar.gz"), "-l", str(layers / "base"), "-u", str(upper)]


def test_list_tree_cat(stack):
    listed = run("list", *stack)
    assert listed.returncode == 0 and listed.stdout.split() == ["bin/", "etc/", "srv/"]
    assert run("list", *stack, "etc").stdout.split() == ["app.conf", "motd"]
    tree = run("tree", *stack)
    assert tree.returncode == 0
    assert "├── etc/" in tree.stdout and "index.html" in tree.stdout and ".unionfs" not in tree.stdout
    cat = run("cat", *stack, "etc/app.conf")
    assert cat.returncode == 0 and cat.stdout == "debug = true\n"
    assert run("cat", *stack, "etc/motd").stdout == "hello from base\n"


def test_diff(stack):
    diff = run("diff", *stack)
    assert diff.returncode == 0
    assert diff.stdout.splitlines() == ["D /doomed", "M /etc/app.conf", "A /srv/", "A /srv/index.html"]
    as_json = run("diff", "--json", *stack)
    assert '"deleted": [\n    "/doomed"\n  ]' in as_json.stdout


def test_commit_with_a_progress_bar(stack, tmp_path):
    target = tmp_path / "export"
    result = run("--progress", "always", "commit", *stack, str(target))
    assert result.returncode == 0, result.stderr
    assert "commit [" in result.stderr and "100%" in result.stderr
    assert (target / "etc" / "app.conf").read_text() == "debug = true\n"
    assert (target / "etc" / "motd").read_text() == "hello from base\n"
    assert not (target / "doomed").exists()
    quiet = run("commit", "--only-changes", *stack, str(tmp_path / "changes-only"))
    assert quiet.returncode == 0 and quiet.stderr == ""  # no bar when stderr is not a terminal
    assert sorted(os.listdir(tmp_path / "changes-only")) == ["etc", "srv"]


def test_commit_into_a_lower_needs_the_flag(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (lower / "f").write_text("old")
    layers = ["-l", str(lower), "-u", str(upper)]
    with OverlayFS(str(lower), upper=str(upper)) as overlay:
        overlay.writetext("f", "new")
    assert_one_line_error(run("commit", *layers, str(lower)), 1, "--into-lower")
    assert (lower / "f").read_text() == "old"
    done = run("commit", "--into-lower", *layers, str(lower))
    assert done.returncode == 0, done.stderr
    assert (lower / "f").read_text() == "new"
    assert run("diff", *layers).stdout == ""


def test_url_form(stack):
    from unionfs.tools.opener import overlay_url

    url = overlay_url([stack[1], stack[3]], upper=stack[5])
    assert run("cat", "--url", url, "srv/index.html").stdout == "<h1>hi</h1>\n"


@pytest.mark.parametrize(
    "args, code, fragments",
    [
        (["list", "-l", "/no/such/dir"], 1, ["/no/such/dir"]),
        (["cat", "-l", "{lower}", "missing.txt"], 1, ["missing.txt"]),
        (["cat", "-l", "{lower}", "/"], 1, ["/"]),
        (["list", "-l", "{lower}", "--url", "overlay://mem://"], 2, ["--url"]),
        (["list"], 2, ["--lower"]),
        (["frobnicate"], 2, ["frobnicate"]),
        ([], 2, ["choose a command"]),
        (["list", "-l", "{junk}"], 1, ["not a tar or zip archive"]),
    ],
)
def test_errors_are_one_line_and_a_nonzero_exit(tmp_path, args, code, fragments):
    (tmp_path / "lower").mkdir()
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    args = [arg.format(lower=tmp_path / "lower", junk=tmp_path / "junk.zip") for arg in args]
    assert_one_line_error(run(*args), code, *fragments)


def test_demo_runs_the_walkthrough_and_checks_itself(tmp_path):
    result = run("demo", "--keep", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK FAILED" not in result.stdout
    for claim in (
        "ok: the lower is untouched",
        "ok: the merged view equals the lower again",
        "ok: /etc/app is empty in the merged view",
        "D /var/log/old.log",
        "M /etc/motd",
    ):
        assert claim in result.stdout
    kept = tmp_path / "demo"
    assert (kept / "lower" / "etc" / "app" / "config.ini").exists()
    assert (kept / "upper" / ".unionfs" / "tree" / "d" / "etc" / "o" / "app").exists()
    again = run("demo", "--keep", str(kept))  # refuses to reuse a non-empty work dir
    assert again.returncode == 1 and "must be empty" in again.stdout


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "unionfs")
    assert os.path.exists(script), "pip install -e . should have created the unionfs script"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in ("list", "tree", "cat", "diff", "commit", "demo"):
        assert name in result.stdout


def test_diff_shows_renames_and_the_copying_flags(tmp_path):
    """``R new <- old`` for a directory renamed by a redirect; ``--no-redirect-dir
    --no-metacopy`` are accepted by every command that opens an overlay."""
    from fs.osfs import OSFS
    from unionfs import OverlayFS

    (tmp_path / "low" / "d").mkdir(parents=True)
    (tmp_path / "low" / "d" / "f").write_text("f")
    (tmp_path / "up").mkdir()
    with OverlayFS([OSFS(str(tmp_path / "low"))], OSFS(str(tmp_path / "up"))) as overlay:
        overlay.movedir("d", "e", create=True)
    stack = ("-l", str(tmp_path / "low"), "-u", str(tmp_path / "up"))
    diff = run("diff", *stack)
    assert diff.returncode == 0 and diff.stdout.splitlines() == ["D /d/", "R /e/ <- /d/"], diff
    copying = run("diff", "--no-redirect-dir", "--no-metacopy", *stack)
    assert copying.returncode == 0 and copying.stdout == diff.stdout


# -- issue 11 item 10: what a new user tripped over ----------------------------------------------


def _tree_state(root) -> dict:
    """Every path under ``root`` with its type, content and mtime: to prove nothing was written."""
    def record(full: str, status: os.stat_result) -> tuple:
        if not os.path.isfile(full):
            return (status.st_mode, status.st_mtime_ns, None)
        with open(full, "rb") as handle:
            return (status.st_mode, status.st_mtime_ns, handle.read())

    return {path[1:]: entry for path, entry in trees.disk_snapshot(str(root), record).items()}


def test_version() -> None:
    from unionfs import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == "unionfs " + __version__


def test_url_with_a_path_as_the_readme_documents(stack) -> None:
    lowers = ",".join(stack[i + 1] for i in range(0, len(stack) - 2, 2))
    url = "overlay://%s?upper=%s!/etc" % (lowers, stack[-1])
    listed = run("list", "--url", url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["app.conf", "motd"]
    assert run("cat", "--url", url, "app.conf").stdout == "debug = true\n"
    assert_one_line_error(run("diff", "--url", url), 2, "whole overlay")


def test_progress_after_the_subcommand_and_never_over_100(stack, tmp_path) -> None:
    """``--progress`` is accepted after the subcommand too; a metadata-only change the target
    lacks is copied and counted, so the bar never passes 100% (it reached 139%)."""
    import re

    upper = stack[-1]
    with OverlayFS([stack[1], stack[3]], upper=upper) as overlay:
        overlay.setinfo("etc/motd", {"details": {"modified": 1234567}})  # metadata only: same bytes, other mtime
    result = run("commit", *stack, str(tmp_path / "out"), "--only-changes", "--progress", "always")
    assert result.returncode == 0, result.stderr
    percents = [int(p) for p in re.findall(r"(\d+)%", result.stderr)]
    assert percents and max(percents) == 100 and percents[-1] == 100, result.stderr


def test_commit_into_a_zip_of_a_file_with_mtime_0(tmp_path) -> None:
    """mtime 0 (what reproducible exports use) predates what a zip can hold: the commit clamps it
    to 1980-01-01 instead of leaving an empty zip and an ``FS.__del__`` traceback."""
    import zipfile

    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "f").write_text("data")
    os.utime(lower / "f", (0, 0))
    result = run("commit", "-l", str(lower), "-u", str(tmp_path / "up"), "zip://" + str(tmp_path / "out.zip"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.read("f") == b"data" and archive.getinfo("f").date_time[:3] == (1980, 1, 1)


def test_tree_of_a_missing_path_prints_only_the_error(stack) -> None:
    result = run("tree", *stack, "nosuch")
    assert result.stdout == ""
    assert_one_line_error(result, 1, "nosuch")


def test_read_only_commands_write_nothing(stack, tmp_path) -> None:
    """list, tree, cat and diff read: an upper that does not exist stays so (``list -u newdir``
    made ``newdir/.unionfs``), and an existing one is left byte for byte, times included."""
    lowers = stack[:-2]
    fresh = tmp_path / "newdir"
    for command in (["list"], ["tree"], ["cat", "etc/motd"], ["diff"]):
        result = run(*command[:1], *lowers, "-u", str(fresh), *command[1:])
        assert result.returncode == 0, result.stderr
        assert not fresh.exists(), command
    before = _tree_state(stack[-1])
    for command in (["list"], ["tree"], ["cat", "etc/app.conf"], ["diff"], ["diff", "--json"]):
        assert run(*command[:1], *stack, *command[1:]).returncode == 0
    assert _tree_state(stack[-1]) == before


def test_an_upper_that_is_a_file_is_named_clearly(stack, tmp_path) -> None:
    somefile = tmp_path / "somefile"
    somefile.write_text("x")
    for command in ("list", "commit", "diff"):
        args = [command, *stack[:-2], "-u", str(somefile)] + ([str(tmp_path / "out")] if command == "commit" else [])
        assert_one_line_error(run(*args), 2, "is a file", "somefile")


def test_fsck_dry_run_changes_nothing(stack) -> None:
    """``fsck --dry-run`` only reports (it used to empty the staging area while opening)."""
    staging = os.path.join(stack[-1], ".unionfs", "tmp")
    os.makedirs(staging, exist_ok=True)
    with open(os.path.join(staging, "leftover"), "w") as out:
        out.write("half a copy-up")
    before = _tree_state(stack[-1])
    result = run("fsck", *stack, "--dry-run")
    assert result.returncode == 4 and "staging" in result.stdout, result
    after = _tree_state(stack[-1])
    # the lock record comes and goes (it keeps other writers out while fsck looks), which
    # stamps the sidecar directory itself; everything in it and in the upper is as it was
    assert after.pop(".unionfs")[0] == before.pop(".unionfs")[0]
    assert after == before
    assert run("fsck", *stack).returncode == 0
    assert not os.path.exists(os.path.join(staging, "leftover"))


def test_oci_and_kernel_layers_from_the_command_line(tmp_path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "motd").write_text("hello\n")
    kernel_upper = tmp_path / "kupper"
    with OverlayFS(str(lower), upper=str(tmp_path / "u")) as overlay:
        overlay.writetext("etc/new", "new\n")
        overlay.export_kernel(str(kernel_upper))
        overlay.export_layer(str(tmp_path / "layer.tar"))
    listed = run("list", "--kernel", str(kernel_upper), "--kernel", str(lower), "etc")
    assert listed.returncode == 0 and listed.stdout.split() == ["motd", "new"], listed.stderr
    # an image made of that layer alone, in an OCI layout, by the CLI's own export-layer
    layout = tmp_path / "layout"
    layout.mkdir()  # an empty OCI image layout
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    result = run("export-layer", "-l", str(lower), "-u", str(tmp_path / "u"), "--layout", str(layout), "--tag", "one")
    assert result.returncode == 0 and "diff_id sha256:" in result.stdout, result.stderr
    listed = run("list", "--oci", str(layout), "--ref", "one", "etc")
    assert listed.returncode == 0 and listed.stdout.split() == ["new"], listed.stderr


def test_discard_hide_make_opaque_export_kernel(stack, tmp_path) -> None:
    assert run("hide", *stack, "etc/motd").returncode == 0
    assert run("make-opaque", *stack, "bin").returncode == 0
    listed = run("list", *stack, "etc")
    assert listed.stdout.split() == ["app.conf"]
    assert run("list", *stack, "bin").stdout == ""
    exported = run("export-kernel", *stack, str(tmp_path / "kernel"), "--whiteout", "xattr")
    assert exported.returncode == 0, exported.stderr
    assert os.path.isfile(tmp_path / "kernel" / "etc" / "motd")  # an xattr whiteout
    assert os.getxattr(str(tmp_path / "kernel" / "bin"), "trusted.overlay.opaque") == b"y"
    discarded = run("discard", *stack)
    assert discarded.returncode == 0 and "discarded" in discarded.stdout
    assert run("diff", *stack).stdout == ""
    assert run("list", *stack, "etc").stdout.split() == ["app.conf", "motd"]


def test_unsafe_archives_from_the_command_line_and_the_url(tmp_path) -> None:
    hostile = build(str(tmp_path / "hostile.tar"), {"ok.txt": b"ok", "../escape": b"x"}, "tar")
    assert_one_line_error(run("list", "-l", hostile), 1, "escape")
    skipped = run("list", "-l", hostile, "--unsafe", "skip")
    assert skipped.returncode == 0 and skipped.stdout.split() == ["ok.txt"], skipped.stderr
    url = "overlay://%s?unsafe=skip" % hostile
    via_url = run("list", "--url", url)
    assert via_url.returncode == 0 and via_url.stdout.split() == ["ok.txt"], via_url.stderr
    import fs as _fs

    with _fs.open_fs(url) as overlay:
        assert overlay.listdir("/") == ["ok.txt"]
