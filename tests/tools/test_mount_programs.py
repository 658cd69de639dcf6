"""Real programs on a ``unionfs mount`` against a kernel overlay over the same layers, tree for
tree; the talk's walkthrough through the mount; a whole root chrooted into."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from tests.support.mount import fuse_mount, kernel_mount, require_fuse

pytestmark = pytest.mark.usefixtures("fuse_available")


@pytest.fixture
def fuse_available() -> None:
    require_fuse()


def snapshot(root: str, skip: tuple = (".unionfs",)) -> dict:
    """Every entry below ``root``: type, permission bits, size and content digest (files),
    target (links). What two overlays must agree on."""
    found = {}
    for path, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (path == root and d in skip))
        for name in sorted(dirs + files):
            if path == root and name in skip:
                continue
            full = os.path.join(path, name)
            st = os.lstat(full)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)]
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as handle:
                    entry += [st.st_size, hashlib.sha256(handle.read()).hexdigest()]
            elif stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(full))
            found[os.path.relpath(full, root)] = tuple(entry)
    return found


class Pair:
    """The same layers under a kernel overlay and under a unionfs mount."""

    def __init__(self, base, lower_builder) -> None:
        self.base = base
        for side in ("k", "u"):
            for part in ("lower", "upper", "work", "mnt"):
                os.makedirs(base / side / part)
            lower_builder(str(base / side / "lower"))

    def run(self, script: str, cwd_rel: str = ".") -> None:
        outputs = []
        for side in ("k", "u"):
            done = subprocess.run(["sh", "-ec", script], cwd=str(self.base / side / "mnt" / cwd_rel),
                                  capture_output=True, text=True, timeout=600,
                                  env=dict(os.environ, HOME=str(self.base), GIT_CONFIG_NOSYSTEM="1",
                                           GIT_AUTHOR_DATE="2020-01-01T00:00:00Z",
                                           GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"))
            assert done.returncode == 0, "%s side: %s%s" % (side, done.stdout, done.stderr)
            outputs.append(done.stdout)
        assert outputs[0] == outputs[1]

    def __enter__(self) -> "Pair":
        b = self.base
        self._kernel = kernel_mount([str(b / "k" / "lower")], str(b / "k" / "upper"), str(b / "k" / "work"),
                                    str(b / "k" / "mnt"))
        self._kernel.__enter__()
        self._fuse = fuse_mount([str(b / "u" / "lower")], str(b / "u" / "mnt"), upper=str(b / "u" / "upper"))
        try:
            self._fuse.__enter__()
        except BaseException:
            self._kernel.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._fuse.__exit__(*exc)
        finally:
            self._kernel.__exit__(*exc)

    def same_trees(self, ignore: tuple = ()) -> None:
        kernel, fuse = (snapshot(str(self.base / side / "mnt")) for side in ("k", "u"))
        for name in ignore:
            assert name in kernel and name in fuse
            del kernel[name], fuse[name]
        assert kernel == fuse


def _project_lower(root: str) -> None:
    """A lower with some depth: a copy of this project's unionfs package, and an archive."""
    shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "unionfs"),
                    os.path.join(root, "src"), ignore=shutil.ignore_patterns("__pycache__"))
    with tarfile.open(os.path.join(root, "big.tar"), "w") as archive:
        for number in range(400):
            data = (b"file %d\n" % number) * (number % 7 + 1)
            info = tarfile.TarInfo("tree/d%02d/f%04d.txt" % (number % 20, number))
            info.size = len(data)
            info.mtime = 1_600_000_000
            archive.addfile(info, io.BytesIO(data))


def test_tar_cp_find_du_rm_give_the_kernels_tree(tmp_path):
    with Pair(tmp_path, _project_lower) as pair:
        pair.run("tar xf big.tar && find tree -type f | sort | md5sum")
        pair.same_trees()
        pair.run("cp -a src copy && cp -a tree tree2 && du -s --apparent-size copy tree2 | cut -f1")
        pair.same_trees()
        pair.run("find . -name '*.py' | sort | head -50; find . | wc -l")
        pair.run("rm -rf tree copy src/core && ls -R | wc -l")
        pair.same_trees()
    for side in ("k", "u"):  # the lowers stayed as built
        assert os.path.isdir(tmp_path / side / "lower" / "src" / "core")


def _listing(root) -> str:
    """``ls -lR`` without the columns that differ between two filesystems (links, dates)."""
    done = subprocess.run(["ls", "-lRn", "--time-style=+", "."], cwd=str(root), capture_output=True, text=True,
                          check=True)
    lines = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0][0] in "-dlcpbs":
            lines.append(" ".join([parts[0][:10]] + parts[2:5] + parts[5:]))  # mode, uid, gid, size, name
        elif not line.startswith("total"):
            lines.append(line)
    return "\n".join(lines)


def _talk_lower(root: str) -> None:
    os.makedirs(os.path.join(root, "bar"))
    os.makedirs(os.path.join(root, "foo"))
    with open(os.path.join(root, "bar", "barfile"), "w") as out:
        out.write("original\n")
    with open(os.path.join(root, "foo", "foofile"), "w") as out:
        out.write("foo\n")


def test_the_talks_walkthrough_through_the_mount(tmp_path):
    """lower, upper and merged listed with ls -lR before and after
    ``mkdir blatch; touch blatch/blatchfile; echo hello > bar/barfile``, as on the kernel."""
    with Pair(tmp_path, _talk_lower) as pair:
        before = {side: _listing(tmp_path / side / "mnt") for side in ("k", "u")}
        assert before["k"] == before["u"]
        assert _listing(tmp_path / "u" / "upper").splitlines()[1:] == []  # nothing in the upper yet
        pair.run("mkdir blatch && touch blatch/blatchfile && echo hello > bar/barfile && cat bar/barfile")
        after = {side: _listing(tmp_path / side / "mnt") for side in ("k", "u")}
        assert after["k"] == after["u"]
        assert "blatchfile" in after["u"]
        assert (tmp_path / "u" / "upper" / "bar" / "barfile").read_text() == "hello\n"
        assert (tmp_path / "u" / "upper" / "blatch" / "blatchfile").exists()
        assert (tmp_path / "u" / "lower" / "bar" / "barfile").read_text() == "original\n"
        assert _listing(tmp_path / "u" / "lower") == _listing(tmp_path / "k" / "lower")
        upper_k = snapshot(str(tmp_path / "k" / "upper"))
        upper_u = snapshot(str(tmp_path / "u" / "upper"))
        assert upper_k == upper_u  # the same entries in both uppers (ours keeps its records in /.unionfs)

