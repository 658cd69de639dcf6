"""The public exceptions: all in unionfs.errors, printable whatever the path, one translator."""

from __future__ import annotations

import importlib
import pkgutil

import fs
import pytest
from fs import errors
from fs.memoryfs import MemoryFS

import unionfs
from unionfs import OverlayFS
from unionfs import errors as unionfs_errors
from unionfs.errors import PUBLIC, WARNINGS, convert_errors, literal
from unionfs.formats.archives import open_archive

BRACES = "/a/{x}/b{0}{"

#: one instance of each public class, made the way unionfs makes them, around BRACES
INSTANCES = {
    unionfs_errors.ReservedPath: lambda: unionfs_errors.ReservedPath(BRACES),
    unionfs_errors.IllegalDestination: lambda: unionfs_errors.IllegalDestination(BRACES),
    unionfs_errors.SidecarError: lambda: unionfs_errors.SidecarError(BRACES, "reason {y}"),
    unionfs_errors.UnsupportedLayer: lambda: unionfs_errors.UnsupportedLayer(msg="cannot open lower %r" % BRACES),
    unionfs_errors.UpperInUse: lambda: unionfs_errors.UpperInUse(msg="the upper %r is in use" % BRACES),
    unionfs_errors.UnsafeArchive: lambda: unionfs_errors.UnsafeArchive(BRACES, BRACES + "/m", "has a '..' component"),
    unionfs_errors.LayerFormatError: lambda: unionfs_errors.LayerFormatError("%s is not a readable layer tar" % BRACES),
    unionfs_errors.ArchiveTooLarge: lambda: unionfs_errors.ArchiveTooLarge(msg="archive %s has more than 5 members" % BRACES),
    unionfs_errors.DigestMismatch: lambda: unionfs_errors.DigestMismatch("%s: digest mismatch" % BRACES),
    unionfs_errors.LinkLoop: lambda: unionfs_errors.LinkLoop(BRACES),
    unionfs_errors.NotALink: lambda: unionfs_errors.NotALink(BRACES),
    unionfs_errors.NoSuchAttribute: lambda: unionfs_errors.NoSuchAttribute(BRACES, "user.{z}"),
    unionfs_errors.AttributeExists: lambda: unionfs_errors.AttributeExists(BRACES, "user.{z}"),
    unionfs_errors.AttributeNameInvalid: lambda: unionfs_errors.AttributeNameInvalid(BRACES, "", 34),
    unionfs_errors.AttributeTooLarge: lambda: unionfs_errors.AttributeTooLarge(BRACES, "user.{z}"),
    unionfs_errors.MountUnavailable: lambda: unionfs_errors.MountUnavailable(msg="cannot mount %s: no /dev/fuse" % BRACES),
    unionfs_errors.MountError: lambda: unionfs_errors.MountError(msg="FUSE could not mount %r" % BRACES),
}

#: exceptions of the tools and the test helpers, which are not part of the library's API, and
#: the tar scanner's "read this one with tarfile", which never leaves the package
NOT_PUBLIC = {"UsageError", "DemoCheckFailed", "InjectedFault", "Unsupported"}


def test_every_exception_class_of_the_package_is_in_errors():
    found = set()
    for module_info in pkgutil.walk_packages(unionfs.__path__, "unionfs."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, Exception)
                and not issubclass(value, Warning)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.add(value)
    outside = {cls.__qualname__ + " in " + cls.__module__ for cls in found if cls.__module__ != "unionfs.errors"}
    assert {entry.split(" ")[0] for entry in outside} <= NOT_PUBLIC, outside
    assert {cls for cls in found if cls.__module__ == "unionfs.errors"} == set(PUBLIC)
    assert set(INSTANCES) == set(PUBLIC)
    for cls in PUBLIC:
        assert getattr(unionfs, cls.__name__) is cls  # all importable from the package


def test_every_warning_class_of_the_package_is_in_errors():
    found = set()
    for module_info in pkgutil.walk_packages(unionfs.__path__, "unionfs."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, Warning) and value.__module__ == module.__name__:
                found.add(value)
    assert found == set(WARNINGS)
    for cls in WARNINGS:
        assert getattr(unionfs, cls.__name__) is cls


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_str_and_repr_keep_a_path_with_braces(cls):
    error = INSTANCES[cls]()
    assert isinstance(error, cls) and isinstance(error, errors.FSError)
    assert BRACES in str(error)
    assert BRACES in repr(error) or repr(BRACES)[1:-1] in repr(error)
    assert repr(error).startswith(cls.__name__ + "(")


#: the classes whose message can be their default_message (the others always get one built)
DEFAULTED = [cls for cls in PUBLIC if cls.__name__ not in ("LayerFormatError", "DigestMismatch", "UnsafeArchive", "SidecarError")]


@pytest.mark.parametrize("cls", DEFAULTED, ids=lambda cls: cls.__name__)
def test_the_default_message_still_names_the_fields(cls):
    with_path = (unionfs_errors.ReservedPath, unionfs_errors.IllegalDestination, unionfs_errors.LinkLoop, unionfs_errors.NotALink)
    error = cls(BRACES) if cls in with_path else cls()
    text = str(error)
    assert "{" not in text.replace(BRACES, "")  # the template's own fields were filled in


def test_errors_raised_through_the_api_print_brace_paths(tmp_path):
    with pytest.raises(unionfs_errors.UnsupportedLayer) as opened:
        OverlayFS("osfs://%s" % (tmp_path / "no{x}such"))
    assert "no{x}such" in str(opened.value)

    garbage = tmp_path / "{x}.tar"
    garbage.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(unionfs_errors.UnsupportedLayer) as archive:
        open_archive(str(garbage))
    assert "{x}.tar" in str(archive.value) and "{x}.tar" in repr(archive.value)

    overlay = OverlayFS(MemoryFS(), upper=MemoryFS())
    with pytest.raises(unionfs_errors.ReservedPath) as reserved:
        overlay.writetext("/.unionfs/{x}", "no")
    assert "{x}" in str(reserved.value)

    with pytest.raises(errors.CreateFailed) as url:
        fs.open_fs("overlay://mem://?colour={y}")
    assert "{y}" in str(url.value)


def test_literal_protects_messages_of_fs_errors_classes():
    error = errors.OperationFailed(msg=literal("cannot commit %s" % BRACES))
    assert str(error) == "cannot commit " + BRACES


def test_convert_errors_translates_low_level_errors_once():
    cleaned = []
    with pytest.raises(unionfs_errors.LayerFormatError) as caught:
        with convert_errors(unionfs_errors.LayerFormatError, "reading %s" % BRACES, cleanup=lambda: cleaned.append(1)):
            raise OSError("boom {z}")
    assert str(caught.value) == "reading %s: boom {z}" % BRACES
    assert isinstance(caught.value.__cause__, OSError) and cleaned == [1]

    with pytest.raises(errors.ResourceNotFound):  # fs errors pass unless asked for
        with convert_errors(unionfs_errors.LayerFormatError, "reading"):
            raise errors.ResourceNotFound("/x")
    with pytest.raises(unionfs_errors.LayerFormatError):
        with convert_errors(unionfs_errors.LayerFormatError, "reading", fs_errors=True):
            raise errors.ResourceNotFound("/x")
    with pytest.raises(unionfs_errors.DigestMismatch):  # a unionfs error is already precise: never rewrapped
        with convert_errors(unionfs_errors.LayerFormatError, "reading", fs_errors=True):
            raise unionfs_errors.DigestMismatch("blob: digest mismatch")
    with pytest.raises(KeyError):  # a bug is not a format error
        with convert_errors(unionfs_errors.LayerFormatError, "reading"):
            raise KeyError("x")


def test_an_os_error_of_a_layer_prints_a_brace_path(tmp_path):
    """Every unexpected OSError becomes OperationFailed through one function (errors.os_failure),
    its message literal: a link read under a looping directory ``x{y}`` (ELOOP) prints."""
    from fs.osfs import OSFS
    from unionfs.core.stack import Layer

    (tmp_path / "x{y}").symlink_to("x{y}")
    layer = Layer(OSFS(str(tmp_path)), "lower {0}", False, None)
    with pytest.raises(errors.OperationFailed) as failed:
        layer.readlink("/x{y}/l")
    assert str(failed.value).startswith("cannot read the link '/x{y}/l' in lower {0}: ")
    assert isinstance(failed.value.exc, OSError)
