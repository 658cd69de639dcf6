"""Real programs on a ``unionfs mount`` against a kernel overlay over the same layers, tree for
tree; the talk's walkthrough through the mount; a whole root chrooted into."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile

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

    def run(self, script: str, cwd_rel: str = ".", same_path: bool = False) -> None:
        """``sh -ec script`` in each merged directory; both must succeed and print the same.
        With ``same_path`` each side runs in a private mount namespace with its merged
        directory bound at one path (``base/at``), so the absolute paths programs write into
        files (a venv's scripts and ``pyvenv.cfg``) are the same on both sides."""
        outputs = []
        for side in ("k", "u"):
            mnt = str(self.base / side / "mnt")
            command = ["sh", "-ec", script]
            if same_path:
                at = str(self.base / "at")
                os.makedirs(at, exist_ok=True)
                command = ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                           'mount --bind "$1" "$2"; cd "$2/$3"; shift 3; exec sh -ec "$@"', "sh", mnt, at, cwd_rel,
                           script]
            done = subprocess.run(command, cwd=os.path.join(mnt, cwd_rel),
                                  capture_output=True, text=True, timeout=600,
                                  env=dict(os.environ, HOME=str(self.base), GIT_CONFIG_NOSYSTEM="1",
                                           GIT_AUTHOR_NAME="A U Thor", GIT_AUTHOR_EMAIL="author@example.com",
                                           GIT_COMMITTER_NAME="C O Mitter", GIT_COMMITTER_EMAIL="c@example.com",
                                           GIT_AUTHOR_DATE="2020-01-01T00:00:00Z",
                                           GIT_COMMITTER_DATE="2020-01-01T00:00:00Z",
                                           # py_compile then writes hash-checked .pyc files, not ones
                                           # stamped with their source's (this run's) mtime
                                           SOURCE_DATE_EPOCH="1577836800",
                                           PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                                           PIP_NO_CACHE_DIR="1"))
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



def _tiny_wheel(path: str) -> None:
    """A pure-Python wheel built by hand (a wheel is a zip with a dist-info): a package, a
    data file, a console script; deterministic (fixed zip times), needing no build backend."""
    files = {
        "tiny/__init__.py": b"VALUE = 42\n\ndef main():\n    print('tiny', VALUE)\n",
        "tiny/data/table.txt": b"one\ntwo\n",
        "tiny-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n",
        "tiny-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "tiny-1.0.dist-info/entry_points.txt": b"[console_scripts]\ntiny = tiny:main\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("tiny-1.0.dist-info/RECORD,,")
    files["tiny-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)


def _repo_lower(root: str) -> None:
    """Some sources in the lower (a project to put under git) and a directory to commit over."""
    for number in range(30):
        directory = os.path.join(root, "project", "pkg%d" % (number % 3))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "m%02d.py" % number), "w") as out:
            out.write("X = %d\n" % number)
    os.symlink("pkg0/m00.py", os.path.join(root, "project", "alias.py"))
    os.chmod(os.path.join(root, "project", "pkg1", "m01.py"), 0o755)


def test_git_init_add_commit_status_give_the_kernels_tree(tmp_path):
    """git over a project of the lower, then edits, a rename, a deletion and a second commit.
    Fixed author and committer dates make the objects the same; excluded from the comparison:
    ``.git/index`` only, which caches each file's ctime, inode and device (of the filesystem,
    not the overlay's semantics); what it records is compared by ``git ls-files -s``, and
    ``git status`` reads it back (a stale or wrong cache shows as modified files)."""
    with Pair(tmp_path, _repo_lower) as pair:
        pair.run("git init -q -b main . && git add -A && git commit -q -m one && git status --porcelain=v2 -b"
                 " && git ls-files -s && git cat-file -p HEAD && git config --list --local", "project")
        pair.same_trees(ignore=("project/.git/index",))
        pair.run("echo 'Y = 1' >> pkg0/m00.py && git mv pkg1/m01.py pkg1/moved.py && git rm -q pkg2/m02.py"
                 " && mkdir new && echo new > new/file && chmod 600 pkg0/m03.py"
                 " && git status --porcelain=v2 -uall && git add -A && git commit -q -m two"
                 " && git status --porcelain && git log --stat --format=%H%n%s && git fsck --strict 2>&1",
                 "project")
        pair.same_trees(ignore=("project/.git/index",))
        pair.run("git gc -q && git count-objects -v | grep -v size && git status --porcelain", "project")
        pair.same_trees(ignore=("project/.git/index",))
    for side in ("k", "u"):  # the lowers stayed as built
        assert not os.path.exists(tmp_path / side / "lower" / "project" / ".git")
        assert (tmp_path / side / "lower" / "project" / "pkg0" / "m00.py").read_text() == "X = 0\n"


def test_venv_and_pip_install_of_a_local_wheel_give_the_kernels_tree(tmp_path):
    """``python -m venv`` and ``pip install`` of a wheel built here into it, no index, no
    network; then the package imported, its script run, and ``pip uninstall``. The venv is
    made ``--without-pip`` and this interpreter's pip installs into it (``pip --python``):
    ensurepip would add some 1,000 files of pip itself, a minute on the mount, testing nothing
    ``cp -a`` and ``tar x`` do not. Both sides run with the merged directory bound at one path
    (absolute paths go into the venv's files) and ``SOURCE_DATE_EPOCH`` (hash-checked
    ``.pyc``, not ones stamped with this run's mtimes); nothing is excluded."""
    wheel = str(tmp_path / "tiny-1.0-py3-none-any.whl")
    _tiny_wheel(wheel)
    python = sys.executable
    with Pair(tmp_path, _repo_lower) as pair:
        pip = '"%s" -m pip --python v/bin/python' % python
        pair.run('"%s" -m venv --without-pip v && %s install -q --no-index %s'
                 ' && v/bin/python -c "import tiny, sys; print(tiny.VALUE, tiny.__file__, sys.prefix)"'
                 ' && v/bin/tiny && %s list --format=freeze' % (python, pip, wheel, pip), same_path=True)
        pair.same_trees()
        installed = snapshot(str(tmp_path / "u" / "mnt"))
        assert any(name.endswith("site-packages/tiny/data/table.txt") for name in installed)
        assert any(name.endswith("__pycache__/__init__.cpython-%d%d.pyc" % sys.version_info[:2]) for name in installed)
        assert installed["v/bin/tiny"][0] == stat.S_IFREG and installed["v/bin/tiny"][1] & 0o111
        pair.run("%s uninstall -q -y tiny && %s list --format=freeze && ! v/bin/python -c 'import tiny'" % (pip, pip),
                 same_path=True)
        pair.same_trees()
        assert not any("tiny" in name for name in snapshot(str(tmp_path / "u" / "mnt")))
