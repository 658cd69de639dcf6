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

from unionfs import ModesLost, OverlayFS

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
    for path, data in {"etc/passwd": "root", "etc/conf.d/a": "a", "usr/lib/x.so": "x", "shared/from-base": "b",
                       "file-or-dir": "file", "var/log/old": "old", "opt/app/bin": "bin"}.items():
        write(base, path, data)
    for path, data in {"etc/hosts": "hosts", "shared/from-top": "t", "usr/lib/y.so": "y", "top-only": "t"}.items():
        write(top, path, data)
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
    write(layer, "etc/conf.d/b", "b")
    os.setxattr(os.path.join(layer, "etc/conf.d"), namespace + ".overlay.opaque", b"y")
    write(layer, "usr/lib/x.so", "")  # empty file, marked as a whiteout, in an "x" directory
    os.setxattr(os.path.join(layer, "usr/lib/x.so"), namespace + ".overlay.whiteout", b"")
    os.setxattr(os.path.join(layer, "usr/lib"), namespace + ".overlay.opaque", b"x")
    write(layer, "usr/lib/kept", "")  # empty, but no whiteout xattr: a file
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


@pytest.mark.parametrize("feature", ["redirect_dir=on", "metacopy=on"])
def test_layers_with_redirects_or_metacopy_are_refused_by_name(tmp_path, lowers, kernel_overlay, feature) -> None:
    from unionfs import UnsupportedLayer

    upperdir = str(tmp_path / "kupper")
    os.mkdir(upperdir)
    options = feature + (",redirect_dir=on" if feature == "metacopy=on" else "")
    try:
        manager = mounted(tmp_path, lowers, upper=upperdir, options=options)
        merged = manager.__enter__()
    except subprocess.CalledProcessError:
        pytest.skip("this kernel does not mount with " + feature)
    try:
        if feature == "redirect_dir=on":
            os.rename(os.path.join(merged, "var/log"), os.path.join(merged, "var/logs"))
            culprit = "var/logs"
        else:
            os.chmod(os.path.join(merged, "usr/lib/x.so"), 0o600)
            culprit = "usr/lib/x.so"
    finally:
        manager.__exit__(None, None, None)
    with pytest.raises(UnsupportedLayer, match="kernel lower 0 .*: %s is a" % culprit):
        with OverlayFS.from_kernel([upperdir] + lowers) as ours:
            for _ in ours.walk.files():
                pass


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


def test_default_reads_trusted_markers_only_as_the_default_mount(tmp_path, lowers, kernel_overlay) -> None:
    """Issue 11 item 5: ``user.overlay.*`` markers mean nothing to a default mount (no
    ``-o userxattr``), so the default ``from_kernel`` must ignore them too."""
    layer = str(tmp_path / "user-marked")
    write(layer, "etc/conf.d/b", "b")
    os.setxattr(os.path.join(layer, "etc/conf.d"), "user.overlay.opaque", b"y")
    write(layer, "usr/lib/x.so", "")
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
    write(top, "d/w", "")
    os.setxattr(os.path.join(top, "d/w"), "trusted.overlay.whiteout", b"")
    os.setxattr(os.path.join(top, "d"), "trusted.overlay.opaque", b"x")
    write(base, "d/w" if merged_below else "other", "below")
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
    write(lower, "private/f", "f")
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
