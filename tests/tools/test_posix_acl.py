"""POSIX ACL inheritance at creation (unionfs/tools/posix_acl.py), the kernel's
``posix_acl_create``; the mount's own check against a kernel overlay is in
test_mount_xattrs.py."""

from __future__ import annotations

import pytest

from tests.support.xattrs import EXTENDED_ACL, MINIMAL_ACL, acl
from unionfs.tools.posix_acl import GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, inherit, parse

ANY = 0xFFFFFFFF


def test_without_a_default_acl_the_umask_applies():
    result = inherit(None, 0o100666, 0o022, is_dir=False)
    assert (result.mode, result.access, result.default) == (0o100644, None, None)


def test_a_minimal_default_acl_masks_the_mode_and_adds_no_access_acl():
    # r-x for the group and others by the default ACL: the umask plays no part
    default = acl((USER_OBJ, 7, ANY), (GROUP_OBJ, 5, ANY), (OTHER, 5, ANY))
    result = inherit(default, 0o40777, 0o077, is_dir=True)
    assert (result.mode, result.access, result.default) == (0o40755, None, default)
    assert inherit(MINIMAL_ACL, 0o1777, 0o777, is_dir=False).mode == 0o1777  # special bits kept


def test_named_entries_give_an_access_acl_whose_mask_the_mode_limits():
    result = inherit(EXTENDED_ACL, 0o100640, 0o077, is_dir=False)
    assert result.mode == 0o100640 and result.default is None
    # owner rw- (the mode has no x), user 1 rwx kept, group r-x kept, mask r-x & r-- , other 0
    assert parse(result.access) == [[USER_OBJ, 6, ANY], [USER, 7, 1], [GROUP_OBJ, 5, ANY],
                                    [MASK, 4, ANY], [OTHER, 0, ANY]]


@pytest.mark.parametrize("value", [b"", b"\x02\x00\x00\x00\x01", b"\x01\x00\x00\x00",
                                   acl((USER_OBJ, 7, ANY), (OTHER, 5, ANY)), acl((0x40, 7, ANY))])
def test_what_is_not_an_acl_is_refused(value):
    with pytest.raises(ValueError):
        inherit(value, 0o100644, 0o022, is_dir=False)
