"""POSIX ACLs at creation: what the kernel's ``posix_acl_create`` does for a filesystem that
keeps ACLs, done by the mount, which asks for ``FUSE_POSIX_ACL``.

With that flag the kernel checks permissions by the ACLs it reads through getxattr, and
with ``FUSE_DONT_MASK`` it leaves a new entry's mode unmasked: the filesystem gives the new
entry its parent's default ACL (masked by the mode asked for) or, where the parent has none,
the caller's umask. The kernel overlay gets the same from its upper filesystem, or from
``ovl_create_over_whiteout`` where it creates in its work directory."""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

import attr

#: the xattr form (``posix_acl_xattr_header`` and its entries), little-endian
VERSION = 2
HEADER = struct.Struct("<I")
ENTRY = struct.Struct("<HHI")
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TAGS = (USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER)


@attr.s(frozen=True, slots=True)
class Inherited:
    """What a new entry gets: its permission bits (special bits as asked), the access ACL to
    set on it (None where the bits say it all) and, for a directory, its default ACL."""

    mode: int = attr.ib()
    access: Optional[bytes] = attr.ib(default=None)
    default: Optional[bytes] = attr.ib(default=None)


def parse(value: bytes) -> List[List[int]]:
    """An ACL's entries as ``[tag, perm, id]`` lists; ValueError for what is not an ACL."""
    if len(value) < HEADER.size or (len(value) - HEADER.size) % ENTRY.size:
        raise ValueError("not a POSIX ACL: %d bytes" % len(value))
    (version,) = HEADER.unpack_from(value)
    if version != VERSION:
        raise ValueError("not a POSIX ACL: version %d" % version)
    entries = [list(entry) for entry in ENTRY.iter_unpack(value[HEADER.size:])]
    if any(tag not in TAGS for tag, _perm, _id in entries):
        raise ValueError("not a POSIX ACL: unknown tag")
    return entries


def encode(entries: List[List[int]]) -> bytes:
    return HEADER.pack(VERSION) + b"".join(ENTRY.pack(*entry) for entry in entries)


def inherit(default_acl: Optional[bytes], mode: int, umask: int, is_dir: bool) -> Inherited:
    """The new entry's mode and ACLs (``posix_acl_create``): under a default ACL its
    entries masked by the mode asked for, and the mode by them; else the mode less the
    umask."""
    if default_acl is None:
        return Inherited(mode & ~umask)
    entries = parse(default_acl)
    masked, equivalent = _create_masq(entries, mode)
    return Inherited(masked, None if equivalent else encode(entries), default_acl if is_dir else None)


def _create_masq(entries: List[List[int]], mode: int) -> Tuple[int, bool]:
    """``posix_acl_create_masq``: each class's entry keeps only the rights the mode gives
    it and the mode only what the entry grants (the mask stands for the group class where
    there is one); True where the ACL says no more than the mode."""
    bits = mode & 0o777
    equivalent = True
    group_obj = mask_obj = None
    for entry in entries:
        tag = entry[0]
        if tag == USER_OBJ:
            entry[1] &= bits >> 6
            bits &= (entry[1] << 6) | ~0o700
        elif tag in (USER, GROUP):
            equivalent = False
        elif tag == GROUP_OBJ:
            group_obj = entry
        elif tag == OTHER:
            entry[1] &= bits & 0o7
            bits &= entry[1] | ~0o7
        else:  # MASK
            mask_obj = entry
            equivalent = False
    group_class = mask_obj if mask_obj is not None else group_obj
    if group_class is None:
        raise ValueError("not a POSIX ACL: no group entry")
    group_class[1] &= (bits >> 3) & 0o7
    bits &= (group_class[1] << 3) | ~0o70
    return (mode & ~0o777) | (bits & 0o777), equivalent
