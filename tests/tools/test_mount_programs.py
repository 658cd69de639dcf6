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
import tempfile
import time
import zipfile

import pytest

from tests.support.mount import force_unmount, fuse_mount, is_mounted, kernel_mount, require_fuse
from unionfs.testing import trees

pytestmark = pytest.mark.usefixtures("fuse_available")


@pytest.fixture
def fuse_available() -> None:
    require_fuse()


def snapshot(root: str, skip: tuple = (".unionfs",)) -> dict:
    """Every entry below ``root``: type, permission bits, size and content digest (files),
    target (links). What two overlays must agree on."""
    def record(full: str, st: os.stat_result) -> tuple:
        entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)]
        if stat.S_ISREG(st.st_mode):
            with open(full, "rb") as handle:
                entry += [st.st_size, hashlib.sha256(handle.read()).hexdigest()]
        elif stat.S_ISLNK(st.st_mode):
            entry.append(os.readlink(full))
        return tuple(entry)

    found = trees.disk_snapshot(root, record, skip=lambda path: path[1:] in skip)  # only top-level names have no "/" left
    return {path[1:]: entry for path, entry in found.items()}


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


def _digests(paths) -> dict:
    """Each path's type, mode, size and content digest (a link: its target), as lstat sees
    it: what must not change in a lower."""
    found = {}
    for path in paths:
        st = os.lstat(path)
        entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns]
        if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
            with open(path, "rb") as handle:
                entry.append(hashlib.sha256(handle.read()).hexdigest())
        elif stat.S_ISLNK(st.st_mode):
            entry.append(os.readlink(path))
        found[path] = tuple(entry)
    return found


def _listed(directory: str) -> list:
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))]


#: What the chrooted shell does: ls, ps from a /proc mounted inside (and unmounted again),
#: python3 writing and creating directories, a new file in a lower directory, an edit of a
#: lower file through a link (/etc/os-release -> ../usr/lib/os-release), a lower
#: file removed, a lower file renamed, an append to a lower file.
_IN_THE_CHROOT = r"""
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
ls -1A / > /root/ls-root.txt
mount -t proc proc /proc
ps -e -o pid=,comm= > /root/ps.txt
umount /proc
python3 -c 'import os, sys; os.makedirs("/srv/new/deep"); open("/tmp/python.txt", "w").write(sys.version)'
echo hello > /etc/unionfs-chroot.conf
echo 'ID_LIKE=unionfs' >> /etc/os-release
rm /etc/issue.net
mv /etc/debian_version /etc/debian_version.moved
echo appended >> /etc/hostname
cat /etc/hostname /etc/debian_version.moved > /root/cat.txt
ls -1A /tmp /root > /root/ls-opaque.txt
"""


def test_a_whole_root_chrooted_into(tmp_path):
    """The talk's second part: this machine's root filesystem as the one lower of a mount
    with an empty upper; ``/tmp`` and ``/root`` made opaque (``OverlayFS.make_opaque``: the
    talk's ``setfattr -n trusted.overlay.opaque -v y`` in the upper) and the mount made
    again; then ``chroot MNT /bin/sh -c ...`` runs real programs from the lower. Every write
    is in the upper; the lower files the commands touched, and a sample of untouched ones
    (``/etc``, ``/usr/bin``), are as before to the byte and the nanosecond.

    The lower is ``/`` bound (not recursively, read-only) at a directory of its own: the
    upper and the mount point must lie somewhere, and the library refuses an upper whose
    path is inside a lower's (as the kernel does within one filesystem). The bound root is
    the root filesystem as a container image has it: ``/proc``, ``/sys``, ``/dev`` and the
    other mounts are their empty mount-point directories, so the mount cannot wander into
    them, nor into itself (it is a mount too); ``/tmp`` and ``/root`` are opaque, so it never
    looks at the lower's ``/tmp`` (where the upper is), nor at other sessions' files. Lookups
    are lazy: only what the programs touch is read."""
    require_fuse()
    upper, mnt = tmp_path / "upper", tmp_path / "mnt"
    upper.mkdir()
    mnt.mkdir()
    # (bound, not /: the files a container runtime binds over /etc/hostname and such are the
    # host's, not the root filesystem's; what the mount reads is the bound root)
    # not below tmp_path: pytest's clean-up must never meet the root through a bind left mounted
    lower = tempfile.mkdtemp(prefix="unionfs-root-")
    try:
        subprocess.run(["mount", "--bind", "/", lower], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", lower], check=True)
            _whole_root(lower, upper, mnt)
        finally:
            force_unmount(lower)
    finally:
        if not is_mounted(lower):
            os.rmdir(lower)


def _whole_root(lower: str, upper, mnt) -> None:
    touched = ["/etc/os-release", "/etc/issue.net", "/etc/debian_version", "/etc/hostname",
               "/bin/sh", "/usr/bin/python3"]
    for path in touched:
        if not os.path.lexists(lower + path):
            pytest.skip("this machine's root has no %s (the test edits it, in the overlay)" % path)
    # Debian's /etc/os-release is a link to ../usr/lib/os-release: the edit copies up the target
    edited = "/usr/lib/os-release" if os.path.islink(lower + "/etc/os-release") and \
        os.readlink(lower + "/etc/os-release") == "../usr/lib/os-release" else "/etc/os-release"
    sample = [lower + path for path in touched + [edited]] + _listed(lower + "/etc") + _listed(lower + "/usr/bin")[:300]
    before = _digests(sample)
    root_names = sorted(os.listdir(lower))
    with fuse_mount([lower], str(mnt), upper=str(upper)):
        assert sorted(os.listdir(mnt)) == root_names
        # before: the lower's /tmp shows through, the upper's own directory too where /tmp is
        # on the root filesystem (the recursion that making /tmp opaque rules out)
        assert (mnt / str(upper)[1:]).is_dir() == os.path.isdir(lower + str(upper))
        assert (mnt / "etc" / "debian_version").read_bytes() == open(lower + "/etc/debian_version", "rb").read()
    # the daemon closes the overlay (and removes its lock record) just after the unmount
    deadline = time.monotonic() + 60
    while (upper / ".unionfs" / "lock").exists():
        assert time.monotonic() < deadline, "the first mount's daemon still holds the upper"
        time.sleep(0.05)
    from unionfs.tools.mount import open_overlay

    overlay = open_overlay([lower], str(upper))
    try:
        overlay.make_opaque("/tmp")
        overlay.make_opaque("/root")
    finally:
        overlay.close()
    with fuse_mount([lower], str(mnt), upper=str(upper)):
        assert os.listdir(mnt / "tmp") == [] and os.listdir(mnt / "root") == []
        assert not os.path.lexists(mnt / str(upper)[1:])
        try:
            chroot = shutil.which("chroot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or "chroot"
            done = subprocess.run([chroot, str(mnt), "/bin/sh", "-ec", _IN_THE_CHROOT], capture_output=True,
                                  text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
        finally:
            if is_mounted(str(mnt / "proc")):  # the script failed before its umount
                subprocess.run(["umount", "-l", str(mnt / "proc")])
        assert done.returncode == 0, done.stdout + done.stderr
        assert not is_mounted(str(mnt / "proc"))
        # what the programs saw, read back through the mount
        assert (mnt / "root" / "ls-root.txt").read_text().split() == sorted(root_names)
        commands = [line.split(None, 1)[1] for line in (mnt / "root" / "ps.txt").read_text().splitlines()]
        assert "ps" in commands and "sh" in commands
        assert (mnt / "tmp" / "python.txt").read_text().startswith("3.")
        assert (mnt / "root" / "ls-opaque.txt").read_text().split() == [
            "/root:", "cat.txt", "ls-opaque.txt", "ls-root.txt", "ps.txt", "/tmp:", "python.txt"]
        merged_hostname = (mnt / "etc" / "hostname").read_bytes()
        assert merged_hostname == open(lower + "/etc/hostname", "rb").read() + b"appended\n"
        assert (mnt / "root" / "cat.txt").read_bytes() == merged_hostname + open(lower + "/etc/debian_version", "rb").read()
        assert not os.path.lexists(mnt / "etc" / "issue.net")
        assert (mnt / edited[1:]).read_bytes() == open(lower + edited, "rb").read() + b"ID_LIKE=unionfs\n"
        if edited != "/etc/os-release":
            assert os.readlink(mnt / "etc" / "os-release") == "../usr/lib/os-release"  # the link itself untouched
        assert (mnt / "usr" / "bin" / "python3").read_bytes() == open(lower + "/usr/bin/python3", "rb").read()
        assert is_mounted(str(mnt))
    # every write is in the upper ...
    assert (upper / "etc" / "unionfs-chroot.conf").read_text() == "hello\n"
    assert (upper / "etc" / "hostname").read_bytes() == merged_hostname
    # a renamed lower file is a metadata-only copy (its data stays in the lower; what it reads
    # through the mount was checked above, in cat.txt)
    assert (upper / "etc" / "debian_version.moved").is_file()
    assert (upper / edited[1:]).read_bytes().endswith(b"ID_LIKE=unionfs\n")
    assert (upper / "tmp" / "python.txt").exists() and (upper / "root" / "ps.txt").exists()
    assert (upper / "srv" / "new" / "deep").is_dir()
    assert not (upper / "usr" / "bin").exists()  # only what was written was copied up
    # ... and the lower is as it was
    assert _digests(sample) == before
    assert sorted(os.listdir(lower)) == root_names
    for path in ("/etc/unionfs-chroot.conf", "/etc/debian_version.moved", "/srv/new", "/tmp/python.txt",
                 "/root/ps.txt"):
        assert not os.path.lexists(lower + path) and not os.path.lexists(path)


def _hard_link_lower(root: str) -> None:
    os.makedirs(os.path.join(root, "d"))
    with open(os.path.join(root, "d", "a"), "w") as out:
        out.write("shared\n")
    os.link(os.path.join(root, "d", "a"), os.path.join(root, "d", "b"))


def test_a_copy_up_that_breaks_a_lower_hard_link_gives_the_name_its_own_inode(tmp_path):
    """Regression: appending to one name of a lower hard link copies that name up alone (two
    files now, as on the kernel without ``index=on``); the mount kept showing both names with
    one st_ino, so ``cp -a`` and ``tar`` linked the copies again (a write to one then showed
    through the other) and ``[ a -ef b ]`` said they were one file. Likewise for link(2) of
    such a name (found by the mount differential)."""
    with Pair(tmp_path, _hard_link_lower) as pair:
        # link(2) of a name of a lower hard link copies that name up alone first: the new name
        # is a link of the copy, not of the other lower name (the mount gave all three one number)
        pair.run("[ d/a -ef d/b ] && echo linked before; i=$(stat -c %i d/a); ln d/a d/n;"
                 " [ d/a -ef d/n ] && echo a is n; [ d/b -ef d/n ] || echo b is not n; [ d/a -ef d/b ] || echo a is not b;"
                 " [ $(stat -c %i d/a) = $i ] && echo a kept its number || echo a has a new number;"
                 " stat -c '%h %n' d/a d/b d/n; rm d/n")
        pair.same_trees()
        script = ("[ d/a -ef d/b ] && echo linked before; echo more >> d/a; [ d/a -ef d/b ] || echo separate after;"
                  " cat d/a d/b; cp -a d e; stat -c '%h %n' d/a d/b e/a e/b; tar cf - d | tar tvf - | grep -c 'link to' || :;"
                  " ln d/a d/c; [ d/a -ef d/c ] && echo linked again; stat -c '%h %n' d/a d/c d/b;"
                  " echo last >> d/c; cat d/a")
        pair.run(script)
        pair.same_trees()
    with Pair(tmp_path / "renamed", _hard_link_lower) as pair:
        # rename and chmod copy one name up alone too (here: metadata-only copies, whose stat is
        # their lower data's; found by the mount differential)
        pair.run("stat -c %h d/a d/b >/dev/null; mv d/a d/x; [ d/x -ef d/b ] || echo x is not b;"
                 " chmod 600 d/b; ln d/x d/y; [ d/x -ef d/y ] && echo x is y; [ d/b -ef d/y ] || echo b is not y;"
                 " stat -c '%h %a %n' d/x d/y d/b")
        pair.same_trees()


def test_opening_one_name_of_a_lower_hard_link_for_writing_shows_its_new_inode_at_once(tmp_path):
    """Regression (found by the mount differential): open(O_RDWR) of one name of a lower hard
    link copies it up alone; without a write, the kernel kept the mount's cached attributes
    (1 s) with the old, shared st_ino, so ``[ a -ef b ]`` still said one file."""
    with Pair(tmp_path, _hard_link_lower) as pair:
        pair.run("stat -c %h d/a d/b; exec 3<>d/a; [ d/a -ef d/b ] || echo separate; exec 3>&-; stat -c '%h %n' d/a d/b")
        pair.same_trees()
