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
