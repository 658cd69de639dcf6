"""Kernel-format layers both ways, checked with a real ``mount -t overlay``."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
from typing import Iterator, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fs import errors
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from unionfs import ModesLost, OverlayFS, UnsupportedLayer
from unionfs.testing import trees

from tests.support.imagetools import snapshot_dir, snapshot_fs


@contextlib.contextmanager
def mounted(tmp_path, lowers: List[str], upper: Optional[str] = None, options: str = "") -> Iterator[str]:
    """A kernel overlay mount (always unmounted again)."""
    merged = tmp_path / ("merged-%d" % len(list(tmp_path.iterdir())))
    merged.mkdir()
    spec = "lowerdir=" + ":".join(lowers)
    if upper is not None:
        work = tmp_path / ("work-%s" % merged.name)
        work.mkdir()
        spec += ",upperdir=%s,workdir=%s" % (upper, work)
    if options:
        spec += "," + options
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", spec, str(merged)], check=True, capture_output=True)
    try:
        yield str(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def write(root: str, path: str, data: str = "", mode: Optional[int] = None) -> None:
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as out:
        out.write(data)
    if mode is not None:
        os.chmod(full, mode)


def make_lowers(tmp_path) -> List[str]:
    """Two lower directories (topmost first) with files, nested and shadowed directories."""
    top, base = str(tmp_path / "l0"), str(tmp_path / "l1")
    trees.make_tree(OSFS(base, create=True), {"etc/passwd": "root", "etc/conf.d/a": "a", "usr/lib/x.so": "x",
                    "shared/from-base": "b", "file-or-dir": "file", "var/log/old": "old", "opt/app/bin": "bin"})
    trees.make_tree(OSFS(top, create=True), {"etc/hosts": "hosts", "shared/from-top": "t", "usr/lib/y.so": "y",
                                             "top-only": "t"})
    os.chmod(os.path.join(base, "usr/lib"), 0o750)
    os.chown(os.path.join(base, "opt/app/bin"), 1000, 1000)
    return [top, base]


@pytest.fixture
def lowers(tmp_path, guard_lower) -> List[str]:
    """:func:`make_lowers`, guarded against any change (the kernel mounts included)."""
    made = make_lowers(tmp_path)
    for lower in made:
        guard_lower(OSFS(lower))
    return made


def change(overlay: OverlayFS) -> None:
    overlay.remove("etc/passwd")
    overlay.writetext("etc/hosts", "changed")
    overlay.removetree("var/log")
    overlay.makedir("var/log")  # opaque
    overlay.writetext("var/log/new", "new")
    overlay.removetree("shared")
    overlay.remove("file-or-dir")
    overlay.makedirs("file-or-dir/inside")
    overlay.removetree("opt/app")
    overlay.writetext("opt/app", "now a file")
    overlay.make_opaque("usr/lib")
    overlay.writetext("usr/lib/z.so", "z")
    overlay.makedirs("brand/new")


def test_export_kernel_mounts_to_the_same_view(tmp_path, lowers, kernel_overlay) -> None:
    upper = OSFS(str(tmp_path / "ours"), create=True)
    with OverlayFS([OSFS(d) for d in lowers], upper=upper) as overlay:
        change(overlay)
        view = snapshot_fs(overlay)
        overlay.export_kernel(str(tmp_path / "upperdir"))
    assert stat.S_ISCHR(os.lstat(tmp_path / "upperdir/etc/passwd").st_mode)
    with mounted(tmp_path, lowers, upper=str(tmp_path / "upperdir")) as merged:
        assert snapshot_dir(merged) == view
    with mounted(tmp_path, [str(tmp_path / "upperdir")] + lowers) as merged:  # as the top lower
        assert snapshot_dir(merged) == view


def test_export_kernel_with_xattr_whiteouts_as_a_lower(tmp_path, lowers, kernel_overlay) -> None:
    with OverlayFS([OSFS(d) for d in lowers], upper=MemoryFS()) as overlay:
        change(overlay)
        names = sorted(overlay.walk.files()) + sorted(overlay.walk.dirs())
        with pytest.warns(ModesLost):  # a MemoryFS upper: said, as test_export_kernel_from_a_memory_upper checks
            overlay.export_kernel(str(tmp_path / "xlayer"), whiteout="xattr")
    assert os.path.isfile(tmp_path / "xlayer/etc/passwd")  # a regular file, hidden by its xattr
    with mounted(tmp_path, [str(tmp_path / "xlayer")] + lowers) as merged:
        seen = sorted("/" + os.path.relpath(os.path.join(d, f), merged) for d, _, fs_ in os.walk(merged) for f in fs_)
        seen += sorted("/" + os.path.relpath(os.path.join(d, f), merged) for d, ds, _ in os.walk(merged) for f in ds)
        assert seen == names
    with OverlayFS.from_kernel([str(tmp_path / "xlayer")] + lowers) as ours:
        assert sorted(ours.walk.files()) + sorted(ours.walk.dirs()) == names


def test_from_kernel_reads_an_upperdir_the_kernel_wrote(tmp_path, lowers, kernel_overlay) -> None:
    upperdir = str(tmp_path / "kupper")
    os.mkdir(upperdir)
    with mounted(tmp_path, lowers, upper=upperdir) as merged:
        os.remove(os.path.join(merged, "etc/passwd"))
        shutil.rmtree(os.path.join(merged, "var/log"))
        os.mkdir(os.path.join(merged, "var/log"))  # the kernel makes this opaque
        write(merged, "var/log/new", "new")
        shutil.rmtree(os.path.join(merged, "shared"))
        write(merged, "etc/hosts", "edited")
        os.chmod(os.path.join(merged, "usr/lib"), 0o700)
    with mounted(tmp_path, [upperdir] + lowers) as merged:
        expected = snapshot_dir(merged)
    assert stat.S_ISCHR(os.lstat(os.path.join(upperdir, "etc/passwd")).st_mode)
    with OverlayFS.from_kernel([upperdir] + lowers, upper=MemoryFS()) as ours:
        assert snapshot_fs(ours) == expected
        ours.writetext("etc/passwd", "back")  # a whiteout of a lower layer is replaced in our upper
        assert ours.readtext("etc/passwd") == "back"
    assert stat.S_ISCHR(os.lstat(os.path.join(upperdir, "etc/passwd")).st_mode)  # lowers untouched


@pytest.mark.parametrize("namespace", ["trusted", "user"])
def test_opaque_xattrs_and_xattr_whiteouts_hand_made(tmp_path, lowers, kernel_overlay, namespace) -> None:
    layer = str(tmp_path / "hand")
    # usr/lib/x.so: an empty file, marked as a whiteout below, in an "x" directory;
    # usr/lib/kept: empty, but no whiteout xattr: a file
    trees.make_tree(OSFS(layer, create=True), {"etc/conf.d/b": "b", "usr/lib/x.so": "", "usr/lib/kept": ""})
    os.setxattr(os.path.join(layer, "etc/conf.d"), namespace + ".overlay.opaque", b"y")
    os.setxattr(os.path.join(layer, "usr/lib/x.so"), namespace + ".overlay.whiteout", b"")
    os.setxattr(os.path.join(layer, "usr/lib"), namespace + ".overlay.opaque", b"x")
    options = "userxattr" if namespace == "user" else ""
    with mounted(tmp_path, [layer] + lowers, options=options) as merged:
        expected = snapshot_dir(merged)
    assert "/usr/lib/x.so" not in expected and "/etc/conf.d/a" not in expected and "/usr/lib/y.so" in expected
    with OverlayFS.from_kernel([layer] + lowers, userxattr=(namespace == "user")) as ours:
        assert snapshot_fs(ours) == expected
    with OverlayFS.from_kernel([layer] + lowers, userxattr=(namespace != "user")) as other:
        assert other.exists("etc/conf.d/a")  # the other namespace is not honoured


def test_round_trip_kernel_to_kernel(tmp_path, lowers, kernel_overlay) -> None:
    upper = OSFS(str(tmp_path / "ours"), create=True)
    with OverlayFS.from_kernel(lowers, upper=upper) as overlay:
        change(overlay)
        view = snapshot_fs(overlay)
        overlay.export_kernel(str(tmp_path / "exported"))
    with OverlayFS.from_kernel([str(tmp_path / "exported")] + lowers) as again:
        assert snapshot_fs(again) == view
    with mounted(tmp_path, lowers, upper=str(tmp_path / "exported")) as merged:
        assert snapshot_dir(merged) == view


def test_export_kernel_refuses_a_non_empty_destination(tmp_path) -> None:
    from fs.errors import DirectoryNotEmpty

    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("x")
    with OverlayFS(MemoryFS(), upper=MemoryFS()) as overlay:
        with pytest.raises(DirectoryNotEmpty):
            overlay.export_kernel(str(tmp_path / "dest"))


def test_export_kernel_refuses_special_files_by_name(tmp_path) -> None:
    from fs.errors import Unsupported

    os.makedirs(str(tmp_path / "upper" / "run"))
    os.mkfifo(str(tmp_path / "upper" / "run" / "pipe"))  # an upper directory made by other tools
    with OverlayFS(MemoryFS(), upper=OSFS(str(tmp_path / "upper"))) as overlay:
        with pytest.raises(Unsupported, match="cannot export /run/pipe: a fifo"):
            overlay.export_kernel(str(tmp_path / "dest"))


REDIRECT_OPTIONS = "redirect_dir=on,metacopy=on"


def _redirect_mount(tmp_path, lowers: List[str], upper: str) -> "contextlib.AbstractContextManager[str]":
    try:
        return mounted(tmp_path, lowers, upper=upper, options=REDIRECT_OPTIONS)
    except subprocess.CalledProcessError as error:  # pragma: no cover - a kernel without them
        pytest.fail("this kernel does not mount with %s: %s" % (REDIRECT_OPTIONS, error.stderr))


def test_a_kernel_upperdir_with_redirects_and_metacopy_opens_to_the_kernels_view(tmp_path, lowers, kernel_overlay) -> None:
    """The kernel itself renames (within a directory: a relative redirect; across: an absolute
    one; a renamed directory renamed again; one renamed back), chmods and utimes lower files
    (metadata-only copy-ups) and moves one of them: ``from_kernel`` shows what it shows."""
    upperdir = str(tmp_path / "kupper")
    os.mkdir(upperdir)
    with _redirect_mount(tmp_path, lowers, upperdir) as merged:
        join = lambda path: os.path.join(merged, path)  # noqa: E731
        os.rename(join("var/log"), join("var/logs"))  # same directory: relative redirect
        os.rename(join("etc/conf.d"), join("conf"))  # across directories: absolute redirect
        os.rename(join("conf"), join("usr/conf"))  # a redirected directory renamed again
        os.rename(join("opt/app"), join("app"))
        os.rename(join("app"), join("opt/app"))  # and back onto its original name
        os.rename(join("shared"), join("etc/shared"))  # merged from both lowers
        os.chmod(join("usr/lib/x.so"), 0o600)
        os.utime(join("top-only"), (1000, 1000))
        os.rename(join("usr/lib/x.so"), join("x-moved.so"))  # a metacopy file moved
        with open(join("var/logs/old"), "a") as out:  # data copy-up inside a redirected dir
            out.write("+")
        expected = snapshot_dir(merged, with_times=False)
        times = {path: int(os.lstat(join(path.lstrip("/"))).st_mtime) for path in ("/top-only", "/x-moved.so")}
    metacopy = [path for path, full, status in trees.disk_entries(upperdir)
                if not stat.S_ISDIR(status.st_mode) and _has_xattr(full, "trusted.overlay.metacopy")]
    assert metacopy, "the kernel made no metadata-only copy-up"
    with OverlayFS.from_kernel([upperdir] + lowers) as ours:
        assert snapshot_fs(ours, with_times=False) == expected
        assert {path: int(ours.getinfo(path, ["details"]).raw["details"]["modified"]) for path in times} == times


def test_an_upper_with_redirects_and_metacopy_exports_to_the_same_kernel_view(tmp_path, lowers, kernel_overlay) -> None:
    """Redirected directories (also nested, renamed twice and back) and metadata-only files
    (also moved) written by ``export_kernel`` and mounted by the kernel with redirect_dir=on,
    metacopy=on: the same merged view, and the exported metacopy files hold no data."""
    upper = MemoryFS()
    with OverlayFS([OSFS(lower) for lower in lowers], upper) as overlay:
        overlay.movedir("var/log", "var/logs", create=True)
        overlay.movedir("etc/conf.d", "conf", create=True)
        overlay.movedir("conf", "usr/conf", create=True)
        overlay.movedir("opt/app", "app", create=True)
        overlay.movedir("app", "opt/app", create=True)
        overlay.movedir("shared", "etc/shared", create=True)
        overlay.makedir("new")
        overlay.movedir("usr/lib", "new/lib", create=True)  # a redirect inside a pure upper directory
        overlay.setinfo("top-only", {"details": {"modified": 1000, "accessed": 1000}})
        overlay.move("etc/hosts", "hosts-moved")
        overlay.appendbytes("var/logs/old", b"+")
        view = snapshot_fs(overlay, with_times=False)
        dest = str(tmp_path / "exported")
        with pytest.warns(ModesLost):  # a MemoryFS upper holds no modes: said
            overlay.export_kernel(dest)
    assert upper.readtext("/.unionfs/FORMAT") == "unionfs-sidecar 3\n"
    for path in ("/top-only", "/hosts-moved"):
        assert _has_xattr(dest + path, "trusted.overlay.metacopy")
        assert os.lstat(dest + path).st_blocks * 512 <= 4096  # sparse (at most an xattr block)
    with _redirect_mount(tmp_path, lowers, dest) as merged:
        got = snapshot_dir(merged, with_times=False)
        assert int(os.lstat(os.path.join(merged, "top-only")).st_mtime) == 1000
    # the owner the library cannot give on MemoryFS is the only difference allowed
    assert {p: e[:1] for p, e in got.items()} == {p: e[:1] for p, e in view.items()}


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
        return True
    except OSError:
        return False


KERNEL_PATHS = ["etc", "etc/passwd", "etc/hosts", "etc/conf.d", "etc/conf.d/a", "usr/lib", "usr/lib/x.so", "var/log",
                "var/log/old", "shared", "shared/from-top", "new", "new/f", "top-only", "file-or-dir"]


def kernel_apply(merged: str, operation: str, path: str) -> None:
    full = os.path.join(merged, path)
    try:
        if operation == "write":
            with open(full, "w") as out:
                out.write("written " + path)
        elif operation == "unlink":
            os.unlink(full)
        elif operation == "rmtree":
            shutil.rmtree(full)
        elif operation == "mkdir":
            os.mkdir(full)
        elif operation == "chmod":
            os.chmod(full, 0o751)
        elif operation == "recreate":  # rm -rf d; mkdir d: the kernel makes d opaque
            shutil.rmtree(full)
            os.mkdir(full)
            with open(os.path.join(full, "inner"), "w") as out:
                out.write("inner")
        else:
            os.rename(full, full + ".moved")
    except OSError:
        pass  # not applicable here (ENOENT, EISDIR, EXDEV for lower directories, ...)


@settings(max_examples=40 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 10, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["write", "unlink", "rmtree", "mkdir", "chmod", "rename", "recreate"]),
                          st.sampled_from(KERNEL_PATHS)), max_size=12))
def test_from_kernel_reads_random_upperdirs_the_kernel_wrote(kernel_overlay, operations) -> None:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="unionfs-kernel-"))
    try:
        lowers = make_lowers(tmp)
        upperdir = str(tmp / "kupper")
        os.mkdir(upperdir)
        with mounted(tmp, lowers, upper=upperdir) as merged:
            for operation, path in operations:
                kernel_apply(merged, operation, path)
        with mounted(tmp, [upperdir] + lowers) as merged:
            expected = snapshot_dir(merged)
        with OverlayFS.from_kernel([upperdir] + lowers) as ours:
            assert snapshot_fs(ours) == expected
    finally:
        shutil.rmtree(str(tmp))


def test_export_kernel_for_userxattr_mounts(tmp_path, lowers, kernel_overlay) -> None:
    with OverlayFS([OSFS(d) for d in lowers], upper=OSFS(str(tmp_path / "ours"), create=True)) as overlay:
        change(overlay)
        view = snapshot_fs(overlay)
        overlay.export_kernel(str(tmp_path / "upperdir"), userxattr=True)
    assert os.getxattr(str(tmp_path / "upperdir/var/log"), "user.overlay.opaque") == b"y"
    with mounted(tmp_path, lowers, upper=str(tmp_path / "upperdir"), options="userxattr") as merged:
        assert snapshot_dir(merged) == view
    with OverlayFS.from_kernel([str(tmp_path / "upperdir")] + lowers, userxattr=True) as again:
        assert snapshot_fs(again) == view


def test_renames_cannot_be_exported_for_a_userxattr_mount(tmp_path) -> None:
    """The kernel refuses userxattr with redirect_dir or metacopy: such an export is refused
    by name before anything is written."""
    from fs.errors import Unsupported

    lower = MemoryFS()
    lower.makedirs("d")
    upper = MemoryFS()
    with OverlayFS(lower, upper) as overlay:
        overlay.movedir("d", "e", create=True)
        with pytest.raises(Unsupported, match="cannot export /e for a userxattr mount"):
            overlay.export_kernel(str(tmp_path / "dest"), userxattr=True)
        assert not (tmp_path / "dest").exists()
        with pytest.warns(ModesLost):  # a MemoryFS upper holds no modes: said
            overlay.export_kernel(str(tmp_path / "trusted"))
    assert os.getxattr(str(tmp_path / "trusted" / "e"), "trusted.overlay.redirect") == b"/d"


def test_default_reads_trusted_markers_only_as_the_default_mount(tmp_path, lowers, kernel_overlay) -> None:
    """Issue 11 item 5: ``user.overlay.*`` markers mean nothing to a default mount (no
    ``-o userxattr``), so the default ``from_kernel`` must ignore them too."""
    layer = str(tmp_path / "user-marked")
    trees.make_tree(OSFS(layer, create=True), {"etc/conf.d/b": "b", "usr/lib/x.so": ""})
    os.setxattr(os.path.join(layer, "etc/conf.d"), "user.overlay.opaque", b"y")
    os.setxattr(os.path.join(layer, "usr/lib/x.so"), "user.overlay.whiteout", b"")
    os.setxattr(os.path.join(layer, "usr/lib"), "user.overlay.opaque", b"x")
    with mounted(tmp_path, [layer] + lowers) as merged:
        expected = snapshot_dir(merged)
    assert "/etc/conf.d/a" in expected and "/usr/lib/x.so" in expected
    for userxattr in ({}, {"userxattr": None}, {"userxattr": False}):
        with OverlayFS.from_kernel([layer] + lowers, **userxattr) as ours:
            assert snapshot_fs(ours) == expected, userxattr


@pytest.mark.parametrize("merged_below", [False, True])
def test_removedir_of_a_dir_holding_an_xattr_whiteout_is_not_empty(tmp_path, kernel_overlay, merged_below) -> None:
    """Issue 11 item 6: the kernel's rmdir counts an xattr whiteout (an empty regular file in an
    ``opaque=x`` directory) as an entry: ENOTEMPTY, whether or not a lower merges below."""
    top, base = str(tmp_path / "top"), str(tmp_path / "base")
    trees.make_tree(OSFS(top, create=True), {"d/w": ""})
    os.setxattr(os.path.join(top, "d/w"), "trusted.overlay.whiteout", b"")
    os.setxattr(os.path.join(top, "d"), "trusted.overlay.opaque", b"x")
    trees.make_tree(OSFS(base, create=True), {"d/w" if merged_below else "other": "below"})
    upperdir = str(tmp_path / "kupper")
    os.mkdir(upperdir)
    with mounted(tmp_path, [top, base], upper=upperdir) as merged:
        with pytest.raises(OSError) as refused:
            os.rmdir(os.path.join(merged, "d"))
    assert refused.value.errno == errno.ENOTEMPTY
    with OverlayFS.from_kernel([top, base], upper=MemoryFS()) as ours:
        with pytest.raises(errors.DirectoryNotEmpty) as raised:
            ours.removedir("d")
        assert raised.value.path == "d"
        assert ours.isdir("d")


def test_export_kernel_from_a_memory_upper_says_modes_are_lost(tmp_path, kernel_overlay) -> None:
    """Issue 11 item 3: a MemoryFS upper holds no modes, so its export cannot keep the 0o700 of
    a copied-up directory; it says so (``ModesLost``) instead of silently writing 0755. An
    OSFS upper keeps the mode and exports without a warning."""
    import warnings

    from unionfs import ModesLost

    lower = str(tmp_path / "lower")
    trees.make_tree(OSFS(lower, create=True), {"private/f": "f"})
    os.chmod(os.path.join(lower, "private"), 0o700)
    for name, upper in (("memory", MemoryFS()), ("disk", OSFS(str(tmp_path / "disk-upper"), create=True))):
        with OverlayFS([OSFS(lower)], upper=upper) as overlay:
            overlay.writetext("private/new", "n")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                overlay.export_kernel(str(tmp_path / name))
        lost = [warning for warning in caught if issubclass(warning.category, ModesLost)]
        mode = stat.S_IMODE(os.stat(tmp_path / name / "private").st_mode)
        if name == "memory":
            assert lost and "holds no modes" in str(lost[0].message) and mode == 0o755
        else:
            assert not lost and mode == 0o700


@pytest.mark.parametrize("value", [b"..", b".", b"a/b", b"", b"\xff"], ids=["dotdot", "dot", "two-names", "empty", "not-utf8"])
def test_a_malformed_redirect_in_a_kernel_layer_is_refused_naming_it(tmp_path, value: bytes) -> None:
    """A redirect is an absolute path or one name of the parent (the kernel's
    ovl_check_redirect, then lookup_one_len refusing '.' and '..'): anything else is an
    UnsupportedLayer naming the layer and the directory, never a lookup somewhere else."""
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (top / "d" / "moved").mkdir(parents=True)
    (bottom / "d" / "x").mkdir(parents=True)
    os.setxattr(str(top / "d" / "moved"), "trusted.overlay.redirect", value)
    with OverlayFS.from_kernel([str(top), str(bottom)]) as overlay:
        with pytest.raises(UnsupportedLayer, match=r"top.*d/moved"):
            overlay.listdir("/d/moved")
