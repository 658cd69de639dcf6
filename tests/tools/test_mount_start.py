"""What a mount's start does not do: every ``mount -t fuse.unionfs`` is a fresh interpreter (the
unionmount-testsuite starts hundreds), so its start path imports no archive or object-store
module, spawns no ``ldconfig``, and opens a plain directory without the FS opener registry.
Each check runs in a fresh interpreter, where the imports are not those of this test run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.mount import fuse_mount, require_fuse

#: modules a mount of directories has no use for
FORMAT_MODULES = ("unionfs.formats.archives", "unionfs.formats.archive_index", "unionfs.formats.oci",
                  "unionfs.formats.oci.blobs", "unionfs.formats.fsspec_layer")


def _python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_opening_a_mounts_layers_imports_no_format_module_and_no_opener_lookup(tmp_path) -> None:
    lower, former, upper = tmp_path / "lower", tmp_path / "former", tmp_path / "upper"
    for directory in (lower, former, upper):
        directory.mkdir()
    (lower / "f").write_text("lower")
    seen = _python("""
        import json, sys
        from unionfs.tools import cli, mount
        import fs.opener

        def refuse(*args, **kwargs):
            raise AssertionError("the opener registry was asked: " + repr(args))

        type(fs.opener.registry).open = refuse  # (fs.opener.registry: the registry itself)
        with mount.open_overlay([%r], %r) as overlay:  # a former upper, to be stacked below
            overlay.writetext("/g", "former")
        with mount.open_overlay([%r, %r], %r) as overlay:
            files = sorted(overlay.listdir("/"))
            upper_type = type(overlay.stack.upper.fs).__name__
        print(json.dumps({"files": files, "upper": upper_type,
                          "imported": sorted(m for m in %r if m in sys.modules)}))
    """ % (str(lower), str(former), str(former), str(lower), str(upper), FORMAT_MODULES))
    assert seen == {"files": ["f", "g"], "upper": "OSFS", "imported": []}


def test_an_fs_url_upper_still_opens_through_the_registry(tmp_path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    seen = _python("""
        import json
        from unionfs import OverlayFS
        with OverlayFS([%r], upper="mem://") as overlay:
            overlay.writetext("/x", "memory")
            print(json.dumps({"upper": type(overlay.stack.upper.fs).__name__}))
    """ % (str(lower),))
    assert seen == {"upper": "MemoryFS"}


def test_an_archive_lower_is_still_read_as_an_archive(tmp_path) -> None:
    import tarfile

    member = tmp_path / "member"
    member.write_text("in the archive")
    with tarfile.open(tmp_path / "layer.tar", "w") as archive:
        archive.add(member, arcname="member")
    seen = _python("""
        import json
        from unionfs import OverlayFS
        with OverlayFS([%r]) as overlay:
            print(json.dumps({"text": overlay.readtext("/member")}))
    """ % (str(tmp_path / "layer.tar"),))
    assert seen == {"text": "in the archive"}


def test_libfuse_3_is_found_without_running_ldconfig() -> None:
    require_fuse()
    seen = _python("""
        import json, os, subprocess
        os.environ.pop("FUSE_LIBRARY_PATH", None)

        class Refused(subprocess.Popen):
            def __init__(self, *args, **kwargs):
                raise AssertionError("a process was started: %r" % (args,))

        subprocess.Popen = Refused
        from unionfs.tools import mount
        binding = mount.load_binding()
        print(json.dumps({"path": os.environ["FUSE_LIBRARY_PATH"], "loaded": binding._libfuse_path}))
    """)
    assert seen == {"path": "libfuse3.so.3", "loaded": "libfuse3.so.3"}


def test_a_daemonized_mount_returns_and_serves(tmp_path) -> None:
    """``python -m unionfs mount`` ends its starting process with os._exit once the daemon has
    the mount: what it printed before is kept, and the mount serves."""
    require_fuse()
    lower, upper, mnt = tmp_path / "lower", tmp_path / "upper", tmp_path / "mnt"
    for directory in (lower, upper, mnt):
        directory.mkdir()
    (lower / "f").write_text("lower")
    with fuse_mount([str(lower)], str(mnt), upper=str(upper)):
        assert (mnt / "f").read_text() == "lower"
        (mnt / "new").write_text("upper")
    assert (upper / "new").read_text() == "upper"
