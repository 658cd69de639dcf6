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


_HOLDER = """
import sys, time
from unionfs import OverlayFS
with OverlayFS([sys.argv[1]], upper=sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _hold(lower, upper, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lower), str(upper), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_mount_waits_for_an_upper_that_is_being_let_go(tmp_path) -> None:
    """A FUSE umount returns before the old mount's daemon has closed its overlay; a mount of
    the same upper right after it waits for the lock (a little), as after the kernel's umount."""
    import time

    from unionfs.tools.mount import UPPER_WAIT, open_overlay

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for directory in (lower, upper):
        directory.mkdir()
    holder = _hold(lower, upper, UPPER_WAIT / 3)
    try:
        started = time.monotonic()
        with open_overlay([str(lower)], str(upper)) as overlay:  # what the mount's daemon opens
            overlay.writetext("/after", "mounted")
        assert time.monotonic() - started < UPPER_WAIT
    finally:
        holder.wait(timeout=60)
    assert (upper / "after").read_text() == "mounted"


def test_a_mount_of_an_upper_in_use_still_fails_naming_the_holder(tmp_path) -> None:
    from tests.support.mount import unionfs
    from unionfs.tools.mount import UPPER_WAIT
    import time

    require_fuse()
    lower, upper, mnt = tmp_path / "lower", tmp_path / "upper", tmp_path / "mnt"
    for directory in (lower, upper, mnt):
        directory.mkdir()
    holder = _hold(lower, upper, 120)
    try:
        started = time.monotonic()
        done = unionfs("mount", str(lower), str(mnt), "--upper", str(upper), check=False)
        assert done.returncode == 1 and "in use by process %d" % holder.pid in done.stderr, done.stderr
        assert time.monotonic() - started >= UPPER_WAIT
    finally:
        holder.kill()
        holder.wait(timeout=60)
