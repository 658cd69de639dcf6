"""The ``unionfs`` command line (also ``python -m unionfs``).

Subcommands live in one registry, :data:`COMMANDS`. To add one, write a function that
takes the parsed arguments and returns an exit code, and register it::

    @command("fsck", "check and repair an upper's sidecar", arguments=overlay_arguments)
    def fsck(args: argparse.Namespace) -> int:
        with open_overlay(args) as overlay:
            ...
        return 0

``arguments`` adds the subcommand's own options; :func:`overlay_arguments` gives the
common ``-l/--lower``, ``-u/--upper`` and ``--url`` options that :func:`open_overlay`
reads. Every ``fs.errors`` or OS error becomes one ``unionfs: error: ...`` line on
stderr and exit code 1; usage errors exit with 2; nothing prints a traceback
(``UNIONFS_DEBUG=1`` re-raises, for debugging).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

import attr

from .. import _fsimport  # noqa: F401
from fs import errors
from fs.opener.errors import OpenerError

from fs.path import join

from .. import __version__
from ..changes import ChangeSet
from ..changes import compute as compute_changes
from ..errors import literal, message_of
from ..overlay import OverlayFS, over_own_layers
from .opener import parse_overlay_options
from .render import CHANGE_LETTERS, ProgressBar, tree_lines

Handler = Callable[[argparse.Namespace], int]
ArgumentAdder = Callable[[argparse.ArgumentParser], None]


@attr.s(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line help, option setup and handler."""

    name: str = attr.ib()
    help: str = attr.ib()
    arguments: Optional[ArgumentAdder] = attr.ib()
    handler: Handler = attr.ib()


#: every subcommand, by name, in the order they were registered
COMMANDS: Dict[str, Command] = {}


def command(name: str, help: str, arguments: Optional[ArgumentAdder] = None) -> Callable[[Handler], Handler]:
    """Register the decorated function as subcommand ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, arguments, handler)
        return handler

    return register


class UsageError(Exception):
    """Bad command-line usage: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("%s (see '%s --help')" % (message, self.prog))


# -- shared options and helpers ---------------------------------------------------------------------


def overlay_arguments(parser: argparse.ArgumentParser) -> None:
    """``-l/--lower`` (repeatable, topmost first), ``-u/--upper``, or ``--url overlay://...``;
    ``--oci`` (an image) or ``--kernel`` (kernel-format layers) instead of ``-l``; ``--unsafe``."""
    group = parser.add_argument_group("layers")
    group.add_argument("-l", "--lower", action="append", default=[], metavar="LAYER",
                       help="a lower layer: directory, tar/zip archive or FS URL; repeat, topmost first")
    group.add_argument("-u", "--upper", metavar="LAYER", help="the writable upper: directory or FS URL")
    group.add_argument("--url", metavar="URL", help="the whole overlay as one overlay://...[!PATH] URL instead")
    group.add_argument("--oci", metavar="IMAGE",
                       help="the lowers are the layers of a container image: an OCI layout or a docker save archive")
    group.add_argument("--ref", metavar="NAME", help="which image of --oci (its ref name or tag)")
    group.add_argument("--kernel", action="append", default=[], metavar="DIR",
                       help="a lower in the kernel's overlayfs format (an upperdir, a container layer); repeat, topmost first")
    group.add_argument("--userxattr", action="store_true",
                       help="--kernel layers use user.overlay.* markers (-o userxattr), not trusted.overlay.*")
    group.add_argument("--unsafe", choices=("error", "skip"), default=None,
                       help="archive lowers with unsafe members (.., links out): refuse (error, the default) or leave them out")
    from ..formats import archives  # here, not at the top: `mount -t fuse.unionfs` never reads an archive

    limits = archives.DEFAULT_LIMITS
    group.add_argument("--max-members", type=_limit(int), default=limits.max_members, metavar="N",
                       help="refuse a tar/zip lower with more members (default %s; 0: no limit)" % limits.max_members)
    group.add_argument("--max-ratio", type=_limit(float), default=limits.max_ratio, metavar="R",
                       help="refuse a compressed lower that expands to more than R times its size "
                       "(default %s; 0: no limit)" % limits.max_ratio)
    group.add_argument("--volatile", action="store_true",
                       help="do not fsync (the kernel's -o volatile): faster, but a power cut may lose changes")
    group.add_argument("--no-redirect-dir", dest="redirect_dir", action="store_false",
                       help="movedir of a lower directory copies it (no redirect record; the kernel's default)")
    group.add_argument("--no-metacopy", dest="metacopy", action="store_false",
                       help="setinfo and move of a lower file copy its data up (the kernel's default)")


def _limit(kind: type) -> Callable[[str], Any]:
    """An argparse type: a positive number, or 0 for no limit (``None``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("not a number: %r" % text) from None
        if value < 0:
            raise argparse.ArgumentTypeError("must be 0 (no limit) or more, not %r" % text)
        return value or None

    return parse


@attr.s(frozen=True, slots=True)
class Stack:
    """The layers the options name: lowers (paths, URLs or ready-made layers) and an upper."""

    lowers: List[Any] = attr.ib()
    upper: Optional[str] = attr.ib()
    #: the directory a URL's ``!PATH`` names ("/" for none)
    subdir: str = attr.ib(default="/")
    unsafe: str = attr.ib(default="error")
    #: ``--volatile`` or ``?volatile=1``: nothing is fsynced
    volatile: bool = attr.ib(default=False)
    #: ``--no-redirect-dir``/``--no-metacopy`` or ``?redirect_dir=off``/``?metacopy=off``: copy instead
    redirect_dir: bool = attr.ib(default=True)
    metacopy: bool = attr.ib(default=True)


def _stack(args: argparse.Namespace) -> Stack:
    """What :func:`overlay_arguments`' options name, checked for contradictions."""
    kinds = [name for name, given in (("--url", args.url), ("-l/--lower", args.lower), ("--oci", args.oci),
                                      ("--kernel", args.kernel)) if given]
    if len(kinds) > 1:
        raise UsageError("give one of --url, -l/--lower, --oci or --kernel, not %s" % " and ".join(kinds))
    if not kinds:
        raise UsageError("name at least one lower layer with -l/--lower (or --url, --oci, --kernel)")
    unsafe = args.unsafe or "error"
    volatile = bool(getattr(args, "volatile", False))
    redirect_dir, metacopy = bool(getattr(args, "redirect_dir", True)), bool(getattr(args, "metacopy", True))
    if args.url:
        if args.upper:
            raise UsageError("give either --url or -u, not both (the URL names its upper)")
        if not args.url.startswith("overlay://"):
            raise UsageError("--url must be an overlay:// URL")
        body, _, subdir = args.url.partition("!")  # the README's overlay://...!PATH
        options = parse_overlay_options(body)
        return Stack(
            list(options.lowers), options.upper, "/" + subdir.strip("/"), args.unsafe or options.unsafe,
            volatile or options.volatile,
            redirect_dir=redirect_dir and options.redirect_dir,
            metacopy=metacopy and options.metacopy,
        )
    if args.oci:
        from ..formats.oci.oci import image_stack

        return Stack(list(image_stack(args.oci, ref=args.ref)), args.upper, unsafe=unsafe, volatile=volatile, redirect_dir=redirect_dir, metacopy=metacopy)
    if args.kernel:
        from ..formats.kernel import kernel_layers

        return Stack(list(kernel_layers(args.kernel, args.userxattr)), args.upper, unsafe=unsafe, volatile=volatile, redirect_dir=redirect_dir, metacopy=metacopy)
    return Stack(list(args.lower), args.upper, unsafe=unsafe, volatile=volatile, redirect_dir=redirect_dir, metacopy=metacopy)


def _is_plain_path(layer: str) -> bool:
    return "://" not in layer


def open_overlay(args: argparse.Namespace, read_only: bool = False, recover: bool = True) -> OverlayFS:
    """The overlay named by :func:`overlay_arguments`' options.

    ``read_only`` (list, tree, cat, diff): nothing is written, not even a sidecar or a lock
    record: the upper is read as the topmost lower, and an upper directory that does not exist
    yet reads as empty. ``recover=False``: interrupted operations are left as they are."""
    from ..formats import archives

    # archives opened for this command (lowers given as paths or URLs) use the limits asked for
    archives.DEFAULT_LIMITS = archives.ArchiveLimits(max_members=args.max_members, max_ratio=args.max_ratio)
    stack = _stack(args)
    lowers, upper = list(stack.lowers), stack.upper
    if upper is not None and _is_plain_path(upper):
        if os.path.exists(upper) and not os.path.isdir(upper):
            raise UsageError("the upper %r is a file; an upper is a directory (or an FS URL)" % upper)
        if read_only and not os.path.exists(upper):
            upper = None  # an upper that does not exist yet holds no changes
    args.upper_on_top = read_only and upper is not None
    if args.upper_on_top:
        lowers, upper = [upper] + lowers, None
    overlay = over_own_layers(
        lowers,
        upper,
        volatile=stack.volatile,
        unsafe=stack.unsafe,
        recover=recover,
        redirect_dir=stack.redirect_dir,
        metacopy=stack.metacopy,
    )
    args.subdir = stack.subdir
    return overlay


def view_path(args: argparse.Namespace, path: str) -> str:
    """``path`` of the command line inside the directory a URL's ``!PATH`` named."""
    subdir = getattr(args, "subdir", "/")
    if subdir == "/":
        return path  # as the caller spelled it, for error messages
    return join(subdir, path.lstrip("/")) if path not in ("", "/") else subdir


def whole_overlay(args: argparse.Namespace) -> None:
    """Refuse a URL's ``!PATH`` for a command that works on the whole overlay."""
    if getattr(args, "subdir", "/") != "/":
        raise UsageError("%s works on the whole overlay: leave the !PATH off the URL" % args.command)


def _progress_wanted(args: argparse.Namespace) -> bool:
    return args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())


# -- the subcommands -----------------------------------------------------------------------------------


def _path_argument(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("path", nargs="?", default="/", help="a path in the merged view (default: /)")


@command("list", "list a directory of the merged view", _path_argument)
def list_command(args: argparse.Namespace) -> int:
    with open_overlay(args, read_only=True) as overlay:
        for info in sorted(overlay.scandir(view_path(args, args.path)), key=lambda info: info.name):
            print(info.name + ("/" if info.is_dir else ""))
    return 0


@command("tree", "draw the merged view (or a directory of it) as a tree", _path_argument)
def tree_command(args: argparse.Namespace) -> int:
    with open_overlay(args, read_only=True) as overlay:
        lines = tree_lines(overlay, view_path(args, args.path))  # first: an error prints nothing else
    print(args.path)
    for line in lines:
        print(line)
    return 0


def _cat_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("path", help="a file of the merged view")


@command("cat", "write a file of the merged view to stdout", _cat_arguments)
def cat_command(args: argparse.Namespace) -> int:
    with open_overlay(args, read_only=True) as overlay:
        overlay.download(view_path(args, args.path), sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


#: one letter per kind of change, as in ``docker diff`` / ``git status --short``
def _diff_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print {kind: [paths]} as JSON")


@command("diff", "show the change set: A added, M modified, m metadata only, D deleted, O opaque, R renamed (from its source)", _diff_arguments)
def diff_command(args: argparse.Namespace) -> int:
    # read only: the upper is read as the topmost layer (with its sidecar), so not even a lock
    # record is written; no upper (or none yet) has no changes
    with open_overlay(args, read_only=True) as overlay:
        whole_overlay(args)
        layers = overlay.stack.layers
        changes = compute_changes(layers[0], layers[1:]) if args.upper_on_top else ChangeSet(())
    if args.json:
        print(json.dumps(changes.as_dict(), indent=2))
    else:
        for change in changes:
            slash = "/" if change.is_dir else ""
            source = " <- %s%s" % (change.source, slash) if change.source is not None else ""
            print("%s %s%s%s" % (CHANGE_LETTERS[change.kind], change.path, slash, source))
    return 0


def _commit_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("target", help="where to write: a directory or FS URL")
    parser.add_argument("--only-changes", action="store_true", help="write only the change set, not the whole view")
    parser.add_argument("--into-lower", action="store_true",
                        help="allow the target to be the topmost lower (it is rewritten; the upper is then emptied)")


@command("commit", "write the merged view, or only the changes, into a directory or FS", _commit_arguments)
def commit_command(args: argparse.Namespace) -> int:
    bar = ProgressBar(sys.stderr, "commit") if _progress_wanted(args) else None
    with open_overlay(args) as overlay:
        whole_overlay(args)
        try:
            changes = overlay.commit(args.target, only_changes=args.only_changes, into_lower=args.into_lower, progress=bar)
        finally:
            if bar is not None:
                bar.finish()
    print("committed %s into %s (%d changes)" % ("the changes" if args.only_changes or args.into_lower else "the merged view",
                                                 args.target, len(changes)))
    return 0


def _export_upper_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("target", help="an empty directory or FS URL, e.g. s3://bucket/layers/mine")


@command(
    "export-upper",
    "publish the upper as a layer (entries and sidecar records) into an empty directory or FS, "
    "for other overlays to stack over the same lowers",
    _export_upper_arguments,
)
def export_upper_command(args: argparse.Namespace) -> int:
    with open_overlay(args) as overlay:
        written = overlay.export_upper(args.target)
    print("published the upper into %s (%d entries)" % (args.target, written))
    return 0


def _fsck_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="only report; exit 4 if anything needs repair")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")


@command(
    "fsck",
    "find and repair what interrupted operations left in the upper (give the same lowers: "
    "opening finishes journaled operations)",
    _fsck_arguments,
)
def fsck_command(args: argparse.Namespace) -> int:
    # --dry-run changes nothing: not even what opening an overlay finishes (journal, staging)
    with open_overlay(args, recover=not args.dry_run) as overlay:
        whole_overlay(args)
        report = overlay.fsck(repair=not args.dry_run)
    if args.json:
        print(json.dumps([attr.asdict(finding) for finding in report.findings], indent=2))
    else:
        print(report)
    return 4 if args.dry_run and not report.clean else 0


@command("discard", "throw away every change: empty the upper, so the view is the lowers' again", overlay_arguments)
def discard_command(args: argparse.Namespace) -> int:
    with open_overlay(args) as overlay:
        whole_overlay(args)
        count = len(overlay.changes())
        overlay.discard()
    print("discarded %d changes" % count)
    return 0


def _export_layer_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("dest", nargs="?", help="the layer tar to write (optional with --layout)")
    parser.add_argument("--gzip", action="store_true", help="gzip the layer")
    parser.add_argument("--mtime", type=int, metavar="SECONDS", help="one timestamp for every entry (reproducible layers)")
    parser.add_argument("--opaque", choices=("marker", "whiteouts"), default="marker",
                        help="opaque directories as .wh..wh..opq (marker) or one .wh. per lower name (whiteouts)")
    parser.add_argument("--layout", metavar="DIR", help="also store it in this OCI layout as a new image (needs --tag)")
    parser.add_argument("--tag", metavar="NAME", help="the new image's ref name in --layout")
    parser.add_argument("--base-tag", metavar="NAME", help="the image of --layout the new one is based on")


@command("export-layer", "write the upper's changes as an OCI layer tar (and optionally a new image)", _export_layer_arguments)
def export_layer_command(args: argparse.Namespace) -> int:
    if args.dest is None and args.layout is None:
        raise UsageError("name the layer tar to write, or --layout with --tag")
    if (args.layout is None) != (args.tag is None):
        raise UsageError("--layout and --tag go together")
    with open_overlay(args) as overlay:
        whole_overlay(args)
        layer = overlay.export_layer(args.dest, gzip=args.gzip, opaque=args.opaque, mtime=args.mtime,
                                     layout=args.layout, ref=args.tag, base_ref=args.base_tag)
    print("diff_id %s\ndigest %s\nsize %d" % (layer.diff_id, layer.digest, layer.size))
    return 0


def _export_kernel_arguments(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("dest", help="an empty or new directory: the upperdir (or top lowerdir) to mount")
    parser.add_argument("--whiteout", choices=("device", "xattr"), default="device",
                        help="whiteouts as 0/0 devices (an upperdir; needs CAP_MKNOD) or xattr whiteouts (a lowerdir)")
    parser.add_argument("--user-xattrs", action="store_true", help="write user.overlay.* (for -o userxattr mounts)")


@command("export-kernel", "write the upper in the kernel's overlayfs format", _export_kernel_arguments)
def export_kernel_command(args: argparse.Namespace) -> int:
    with open_overlay(args) as overlay:
        whole_overlay(args)
        overlay.export_kernel(args.dest, userxattr=args.user_xattrs, whiteout=args.whiteout)
    print("exported the upper to %s" % args.dest)
    return 0


def _one_path_argument(parser: argparse.ArgumentParser) -> None:
    overlay_arguments(parser)
    parser.add_argument("path", help="a path of the merged view")


@command("hide", "white out a file or a whole tree of the view, without copying anything", _one_path_argument)
def hide_command(args: argparse.Namespace) -> int:
    with open_overlay(args) as overlay:
        overlay.hide(view_path(args, args.path))
    return 0


@command("make-opaque", "create or mark a directory opaque: nothing of the lowers shows through it", _one_path_argument)
def make_opaque_command(args: argparse.Namespace) -> int:
    with open_overlay(args) as overlay:
        overlay.make_opaque(view_path(args, args.path))
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (created) and keep it, instead of a temporary one")


@command("demo", "the classic overlayfs walkthrough on an embedded sample template", _demo_arguments)
def demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo

    width = shutil.get_terminal_size((120, 24)).columns
    return run_demo(sys.stdout, keep=args.keep, width=max(width, 130))


# -- mounting (unionfs.mount; needs the 'mount' extra) -------------------------------------------------


def _mount_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="LAYER ... MOUNTPOINT",
                        help="lower layers, topmost first: directories (plain, kernel-format or former unionfs "
                             "uppers), tar/zip archives, OCI image layouts, FS URLs; last the mount point, an "
                             "empty directory")
    parser.add_argument("-u", "--upper", metavar="UPPER",
                        help="the writable upper: a directory or FS URL (default: mem://, changes kept in memory)")
    parser.add_argument("--read-only", action="store_true",
                        help="mount read-only (an --upper is then shown, as the topmost lower, and never written)")
    parser.add_argument("-f", "--foreground", action="store_true", help="serve in this process until unmounted")
    parser.add_argument("--nonempty", action="store_true", help="allow a mount point that has entries")
    parser.add_argument("--debug", action="store_true", help="libfuse's debug output (implies --foreground)")
    parser.add_argument("--single-thread", action="store_true", help="serve one request at a time")
    parser.add_argument("--volatile", action="store_true",
                        help="do not fsync the upper (the kernel's -o volatile): faster, but a power cut may lose changes")
    parser.add_argument("--sync", action="store_true",
                        help="make every operation durable when it returns (the kernel's -o sync); by default, as on "
                             "a kernel filesystem, changes are durable after fsync or unmount")
    parser.add_argument("--noxattrs", action="store_true",
                        help="serve no extended attributes (EOPNOTSUPP, as a filesystem without them): small "
                             "writes are faster (-o noxattrs with mount -t fuse.unionfs)")


@command("mount", "mount an overlay on a directory through FUSE (pip install 'unionfs[mount]')",
         arguments=_mount_arguments)
def mount_command(args: argparse.Namespace) -> int:
    from . import mount

    *args.layers, args.mountpoint = args.paths
    if not args.layers:
        raise UsageError("name at least one lower LAYER before the MOUNTPOINT")
    mount.check_fuse()
    mountpoint = mount.check_mountpoint(args.mountpoint, allow_nonempty=args.nonempty)
    for layer in args.layers:
        if "://" not in layer and not os.path.exists(layer):
            raise errors.ResourceNotFound(layer, msg=literal("layer %r does not exist" % layer))
    upper = None if args.read_only and args.upper is None else (args.upper or "mem://")
    statfs_path = upper if upper is not None and "://" not in upper else None
    options = mount.MountOptions(read_only=args.read_only, debug=args.debug, threads=not args.single_thread,
                                 fsname="unionfs", xattrs=not args.noxattrs, extra=("sync",) if args.sync else ())
    code = mount.run(lambda: mount.open_overlay(args.layers, upper, args.read_only, args.volatile), mountpoint, options,
                     foreground=args.foreground or args.debug, statfs_path=statfs_path)
    return _mounted(code, args.foreground or args.debug)


def _umount_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", metavar="MOUNTPOINT")
    parser.add_argument("-z", "--lazy", action="store_true", help="detach now, finish when no longer busy")


@command("umount", "unmount a unionfs (any FUSE) mount", arguments=_umount_arguments)
def umount_command(args: argparse.Namespace) -> int:
    from . import mount

    mount.unmount(args.mountpoint, lazy=args.lazy)
    return 0


def _mount_fuse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="the mount's source name (shown in /proc/mounts)")
    parser.add_argument("mountpoint", metavar="MOUNTPOINT")
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                        help="lowerdir=A:B,upperdir=U,workdir=W and mount flags, as for mount -t overlay")
    parser.add_argument("-f", "--foreground", action="store_true")
    parser.add_argument("-n", action="store_true", help="(from mount(8): no mtab; ignored)")
    parser.add_argument("-s", action="store_true", help="(from mount(8): sloppy; ignored)")
    parser.add_argument("-v", action="store_true", help="(from mount(8): verbose; ignored)")


@command("mount.fuse", "the kernel's syntax, as mount(8) runs it: SOURCE MOUNTPOINT -o lowerdir=...,upperdir=...,"
         "workdir=... (see install-mount-helper)", arguments=_mount_fuse_arguments)
def mount_fuse_command(args: argparse.Namespace) -> int:
    from . import mount

    wanted = mount.parse_kernel_options(args.options)
    mount.check_fuse()
    mountpoint = mount.check_mountpoint(args.mountpoint, allow_nonempty=True)  # as the kernel allows
    for directory in wanted.lowers + tuple(d for d in (wanted.upper, wanted.workdir) if d is not None):
        if not os.path.isdir(directory):
            raise errors.ResourceNotFound(directory, msg=literal("%r is not a directory" % directory))
    options = mount.MountOptions(read_only=wanted.read_only, fsname=args.source, extra=wanted.flags,
                                 xattrs=wanted.xattrs)
    upper = None if wanted.read_only else wanted.upper
    code = mount.run(lambda: mount.open_overlay(wanted.lowers, upper, read_only=False, volatile=wanted.volatile),
                     mountpoint, options, foreground=args.foreground, statfs_path=wanted.upper)
    return _mounted(code, args.foreground)


#: set once a mount's daemon has the mount: ``python -m unionfs`` then ends without the
#: interpreter's teardown (see :func:`_mounted`)
daemon_started = False


def _mounted(code: int, foreground: bool) -> int:
    """``code``, noting that this process only started a daemon: it opened nothing the daemon
    uses and has nothing left to flush, and mount(8) waits for it to exit (a full teardown of
    the interpreter's ~270 modules costs each mount about 0.1 s of CPU)."""
    global daemon_started
    daemon_started = not foreground
    return code


def _install_helper_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default="/sbin/mount.fuse.unionfs",
                        help="where mount(8) looks for the helper of type fuse.unionfs (default: %(default)s)")


@command("install-mount-helper", "install /sbin/mount.fuse.unionfs so that mount -t fuse.unionfs runs this unionfs",
         arguments=_install_helper_arguments)
def install_helper_command(args: argparse.Namespace) -> int:
    from . import mount

    print(mount.install_helper(args.path))
    return 0


# -- entry point --------------------------------------------------------------------------------------

PROGRESS_CHOICES = ("auto", "always", "never")
PROGRESS_HELP = "progress bar on stderr for long operations (auto: when stderr is a terminal)"


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, one with just that subcommand (what a run of it
    parses identically, without building every other subcommand's options)."""
    parser = _Parser(prog="unionfs", description="Linux overlayfs semantics for PyFilesystem2: inspect, diff and "
                                                  "commit overlays of directories, archives and FS URLs.")
    parser.add_argument("--version", action="version", version="unionfs %s" % __version__)
    parser.add_argument("--progress", choices=PROGRESS_CHOICES, default="auto", help=PROGRESS_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for entry in COMMANDS.values():
        if only is not None and entry.name != only:
            continue
        sub = subparsers.add_parser(entry.name, help=entry.help, description=entry.help)
        if entry.arguments is not None:
            entry.arguments(sub)
        # also after the subcommand (unionfs commit --progress always ...); unset unless given
        sub.add_argument("--progress", choices=PROGRESS_CHOICES, default=argparse.SUPPRESS, help=PROGRESS_HELP)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "mount.fuse")  # mount.fuse3 runs `unionfs SOURCE MOUNTPOINT -o OPTIONS`
    # a named command needs only its own parser (mount(8) starts one `mount.fuse` per mount)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and getattr(args, "command", None) == "mount" and not any(item.startswith("-") for item in extra):
            args.paths.extend(extra)  # paths after an option: unionfs mount LOWER --upper U MOUNTPOINT
        elif extra:
            parser.error("unrecognized arguments: %s" % " ".join(extra))
        if args.command is None:
            raise UsageError("choose a command: %s (see 'unionfs --help')" % ", ".join(COMMANDS))
        return COMMANDS[args.command].handler(args)
    except UsageError as error:
        return _fail("%s" % error, 2)
    except (errors.FSError, OpenerError, OSError, ValueError) as error:
        if os.environ.get("UNIONFS_DEBUG") == "1":
            raise
        if isinstance(error, BrokenPipeError):
            return 1
        return _fail(message_of(error), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as error:  # a bug: still one line, with a way to see the traceback
        if os.environ.get("UNIONFS_DEBUG") == "1":
            raise
        return _fail("internal error: %s: %s (UNIONFS_DEBUG=1 shows the traceback)" % (type(error).__name__, error), 70)


def _fail(message: str, code: int) -> int:
    print("unionfs: error: %s" % " ".join(message.split()), file=sys.stderr)
    return code
