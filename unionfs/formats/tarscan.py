"""A one-pass reader of tar headers: each member's metadata, its data skipped.

Indexing a layer tar needs the headers only; Python's :mod:`tarfile` builds each member
through a chain of ``TarInfo`` methods and reads the stream in 10 KiB steps, which is most of
the time it takes to mount a large image. :func:`scan` reads the same stream in large blocks,
parses each 512-byte header in place (ustar, the GNU and v7 forms, GNU long names and long
link targets, PAX extended headers) and steps over the data, yielding a :class:`Member`
per member whose fields are what ``tarfile.open(mode="r|")`` would give for it (the names
decoded as tarfile decodes them, the PAX fields ``path``, ``linkpath``, ``size``,
``mtime``, ``uid``, ``gid``, ``uname`` and ``gname`` applied as tarfile applies them).

It follows tarfile only where the answer is certain: at anything else (a damaged or
truncated header, a number tarfile would refuse, a sparse member, a PAX global header, an
odd PAX record, an archive without a member) it raises :class:`Unsupported` before
yielding what it cannot vouch for, and the caller reads the archive again with tarfile, whose
answer (or error) then counts. ``tests/formats/test_tarscan.py`` compares the two.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import sys
import tarfile
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

BLOCK = tarfile.BLOCKSIZE
#: how much of the stream one read takes
CHUNK = 1 << 20

_ENCODING = sys.getfilesystemencoding()  # tarfile's default encoding (errors: surrogateescape)
#: how the scanner decodes names (a caller reading archives of another encoding uses tarfile)
ENCODING = _ENCODING
_REGULAR = frozenset(tarfile.REGULAR_TYPES)
_SUPPORTED = frozenset(tarfile.SUPPORTED_TYPES)
_LONG = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_GNU_TYPES = frozenset(tarfile.GNU_TYPES)
_PAX_RECORD = re.compile(br"(\d+) ([^=]+)=")
_HDRCHARSET = re.compile(br"\d+ hdrcharset=([^\n]+)\n")
_PAX_NAME_FIELDS = frozenset(tarfile.PAX_NAME_FIELDS)
_PAX_FIELDS = frozenset(tarfile.PAX_FIELDS)
_PAX_NUMBER_FIELDS: Dict[str, Callable[[str], Any]] = dict(tarfile.PAX_NUMBER_FIELDS)  # type: ignore[attr-defined]


class Unsupported(Exception):
    """The archive holds something :func:`scan` leaves to :mod:`tarfile` (the message says
    what): read it again with tarfile."""


class Member:
    """One member as :func:`scan` read it: the fields of a ``tarfile.TarInfo`` of the same
    names (``offset``: its first header; ``offset_data``: its data)."""

    __slots__ = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname",
                 "devmajor", "devminor", "offset", "offset_data", "pax_headers")

    sparse = None  # never: a sparse member is left to tarfile

    name: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    type: bytes
    linkname: str
    uname: str
    gname: str
    devmajor: int
    devminor: int
    offset: int
    offset_data: int
    pax_headers: Dict[str, str]

    def isreg(self) -> bool:
        return self.type in _REGULAR

    isfile = isreg

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE

    def issparse(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<Member %r at %#x>" % (self.name, self.offset)


#: a header's fields: name, mode, uid, gid, size, mtime, chksum, type, linkname, (magic and
#: version skipped), uname, gname, devmajor, devminor, prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s8x32s32s8s8s155s")


def _nts(field: bytes) -> str:
    return field.partition(b"\0")[0].decode(_ENCODING, "surrogateescape")


def _number(field: bytes) -> int:
    """:func:`_nti`, quicker for the usual octal text (a value int() takes from the field
    less its trailing NULs and spaces is the one tarfile reads from it)."""
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        return _nti(field)


def _nti(field: bytes) -> int:
    """tarfile's ``nti``: octal text, or base-256 after a 0x80/0xff byte."""
    if field[0] in (0o200, 0o377):
        return tarfile.nti(field)  # type: ignore[attr-defined,no-any-return]
    end = field.find(b"\0")
    try:
        return int((field if end == -1 else field[:end]).decode("ascii").strip() or "0", 8)
    except ValueError:  # (UnicodeDecodeError too)
        raise Unsupported("a number field tarfile refuses") from None


def _pax_text(value: bytes, name_field: bool, binary: bool = False) -> str:
    """tarfile's ``_decode_pax_field``: UTF-8 (a name field after ``hdrcharset=BINARY``:
    the archive's encoding), else the fallback."""
    try:
        return value.decode(_ENCODING if binary and name_field else "utf-8", "strict")
    except UnicodeDecodeError:
        return value.decode(_ENCODING if name_field else "utf-8", "surrogateescape")


def _pax_records(data: bytes) -> Dict[str, str]:
    """The records of a PAX extended header (its padded data), as tarfile reads them; only a
    well-formed one (each record "LEN KEY=VALUE\\n", NUL padding after the last): Python
    versions differ on the others."""
    headers: Dict[str, str] = {}
    charset = _HDRCHARSET.search(data)
    if charset is not None:
        try:
            headers["hdrcharset"] = charset.group(1).decode("utf-8")  # (first, as tarfile has it)
        except UnicodeDecodeError:
            raise Unsupported("an hdrcharset record that is not UTF-8") from None
    binary = headers.get("hdrcharset") == "BINARY"
    pos = 0
    while True:
        match = _PAX_RECORD.match(data, pos)
        if not match:
            break
        length = int(match.group(1))
        end = match.start(1) + length
        if length == 0 or end > len(data) or data[end - 1 : end] != b"\n" or match.end(2) >= end:
            raise Unsupported("a malformed PAX record")
        keyword = _pax_text(match.group(2), False)
        if keyword.startswith("GNU.sparse."):
            raise Unsupported("a sparse member")
        value = data[match.end(2) + 1 : end - 1]
        headers[keyword] = _pax_text(value, keyword in _PAX_NAME_FIELDS, binary)
        pos = end
    if data[pos:].count(0) != len(data) - pos:
        raise Unsupported("a malformed PAX record")
    return headers


def raw_header(name: bytes, kind: bytes, size: int = 0, prefix: bytes = b"", linkname: bytes = b"") -> bytes:
    """A ustar header block with these fields (mode 0644, ids and time 0), its checksum set."""
    fields = (name.ljust(100, b"\0") + b"0000644\0" + b"0000000\0" * 2 + b"%011o\0" % size + b"00000000000\0"
              + b"        " + kind + linkname.ljust(100, b"\0") + b"ustar\x0000" + b"\0" * 64
              + b"0000000\0" * 2 + prefix.ljust(155, b"\0") + b"\0" * 12)
    checksum = b"%06o\0 " % (sum(fields))
    return fields[:148] + checksum + fields[156:]


@functools.lru_cache(maxsize=None)
def _tarfile_strips() -> Tuple[bool, bool]:
    """How the running Python's tarfile treats trailing slashes (3.11.4 and 3.12 changed it):
    whether a directory's name loses them once its ustar prefix is joined, and whether one
    named by a GNU long name loses one."""
    probe = raw_header(b"/", tarfile.DIRTYPE, prefix=b"p") + raw_header(b"././@LongLink", tarfile.GNUTYPE_LONGNAME, 3)
    probe += b"ld/".ljust(BLOCK, b"\0") + raw_header(b"x", tarfile.DIRTYPE) + b"\0" * (2 * BLOCK)
    with tarfile.open(fileobj=io.BytesIO(probe), mode="r|") as archive:
        names = [member.name for member in archive]
    return names[0] == "p", names[1] == "ld"


#: at most this many non-zero bytes sum to less than Adler-32's modulus less one
_ADLER_EXACT = (65521 - 2) // 255


def _byte_sum(header: bytes, zeros: int) -> int:
    """``sum(header)`` (tarfile's unsigned checksum, before its field is taken out), given
    ``header.count(0)``. Adler-32's low half is ``1 + sum`` modulo 65521, so it is the sum
    itself wherever the sum must be below that: at most :data:`_ADLER_EXACT` (256) non-zero
    bytes, as nearly every header has (names, numbers and owners leave most of its 512 bytes
    zero). One C call instead of a Python-level sum of 512 ints: 0.2 us against 2.7, once
    per member; a header with more non-zero bytes is summed as before."""
    if len(header) - zeros <= _ADLER_EXACT:
        return (zlib.adler32(header) & 0xFFFF) - 1
    return sum(header)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def scan(read: Callable[[int], bytes], skip_ahead: Optional[Callable[[int], int]] = None) -> Iterator[Member]:
    """The members of the tar read by ``read`` (a stream's ``read``), as
    ``tarfile.open(fileobj=..., mode="r|")`` would list them; the stream is read to the end
    of the archive (and up to :data:`CHUNK` bytes past it). ``skip_ahead(n)``, where the
    stream can seek, moves it on by up to ``n`` bytes and says by how many (fewer: it ended),
    so that large member data is stepped over rather than read. :class:`Unsupported` where the
    archive needs tarfile (see the module)."""
    buffer = b""
    start = 0  # the stream offset of buffer[0]
    position = 0  # where the next header begins
    eof = False
    count = 0
    prefix_strip, long_strip = _tarfile_strips()
    known: Dict[bytes, Tuple[int, int, int, str, str, int, int]] = {}

    def fill(end: int) -> bool:
        """Make the stream from ``position`` up to offset ``end`` the buffer; False where the
        stream ends first (then it ends at ``start + len(buffer)``)."""
        nonlocal buffer, start, eof
        have = start + len(buffer)
        if end <= have:
            return True
        if position < have:
            pieces, skip, got = [buffer[position - start :]], 0, have - position
        else:
            pieces, skip, got = [], position - have, 0  # data past the buffer: read and dropped
        want = end - position
        if skip > CHUNK and skip_ahead is not None:
            moved = skip_ahead(skip)
            skip -= moved
            eof = skip > 0
        while (skip or got < want) and not eof:
            piece = read(CHUNK)  # (never more at once: data skipped may be gigabytes)
            if not piece:
                eof = True
                break
            if skip:
                if len(piece) <= skip:
                    skip -= len(piece)
                    continue
                piece, skip = piece[skip:], 0
            pieces.append(piece)
            got += len(piece)
        buffer = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        start = position - skip  # (skip left: the stream ended that far before position)
        return end <= start + len(buffer)

    while True:
        first = position
        # extension headers before the member: (type, data), in the order they appear
        extensions: List[Tuple[bytes, bytes]] = []
        while True:
            if position + BLOCK > start + len(buffer) and not fill(position + BLOCK):
                if start + len(buffer) == position and not extensions:
                    if count == 0:
                        raise Unsupported("an archive without members")
                    return  # the stream ends without end-of-archive blocks: tarfile ends quietly
                raise Unsupported("a truncated header")
            at = position - start
            header = buffer[at : at + BLOCK]
            zeros = header.count(0)
            if zeros == BLOCK:
                if count == 0 or extensions:
                    raise Unsupported("an end-of-archive block where tarfile wants a member")
                return
            (name_field, mode_field, uid_field, gid_field, size_field, mtime_field, checksum_field, kind,
             link_field, uname_field, gname_field, major_field, minor_field, prefix_field) = _HEADER.unpack_from(header)
            # tarfile's checksum: unsigned, or signed as some old tars wrote it
            checksum = _number(checksum_field)
            if checksum != 256 + _byte_sum(header, zeros) - sum(checksum_field) and checksum not in tarfile.calc_chksums(header):  # type: ignore[attr-defined]
                raise Unsupported("a header with a bad checksum")
            size = _number(size_field)
            if kind in _LONG or kind in _PAX:
                if size < 0:
                    raise Unsupported("an extension header of negative size")
                data_end = position + BLOCK + _padded(size)
                if not fill(data_end):
                    raise Unsupported("a truncated extension header")
                at = position - start  # (the fill may have moved the buffer)
                extensions.append((kind, buffer[at + BLOCK : data_end - start]))  # (tarfile reads the padding too)
                position = data_end
                continue
            if kind == tarfile.GNUTYPE_SPARSE:
                raise Unsupported("a sparse member")
            if kind == tarfile.XGLTYPE:
                raise Unsupported("a PAX global header")
            break
        member = Member()
        name = _nts(name_field)
        # the fields a layer repeats (modes, owners, device numbers: a handful of values) are
        # read once per combination
        key = header[100:124] + header[265:345]
        repeated = known.get(key)
        if repeated is None:
            if len(known) > 4096:
                known.clear()
            repeated = known[key] = (_number(mode_field), _number(uid_field), _number(gid_field), _nts(uname_field),
                                     _nts(gname_field), _number(major_field), _number(minor_field))
        member.mode, member.uid, member.gid, member.uname, member.gname, member.devmajor, member.devminor = repeated
        member.mtime = _number(mtime_field)
        member.linkname = _nts(link_field) if link_field[0] else ""
        prefix = _nts(prefix_field) if prefix_field[0] else ""
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE  # v7's directory
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        if prefix and kind not in _GNU_TYPES:
            name = prefix + "/" + name
        member.type = kind
        member.size = size
        member.offset = first
        member.offset_data = position + BLOCK
        pax: Dict[str, str] = {}
        next_header = member.offset_data + (_padded(size) if kind in _REGULAR or kind not in _SUPPORTED else 0)
        if kind == tarfile.DIRTYPE and prefix_strip:
            name = name.rstrip("/")
        member.name = name
        # the innermost extension first, as tarfile's recursion applies them
        for ext_kind, data in reversed(extensions):
            if ext_kind == tarfile.GNUTYPE_LONGNAME:
                member.name = _nts(data)
            elif ext_kind == tarfile.GNUTYPE_LONGLINK:
                member.linkname = _nts(data)
            else:
                pax = _pax_records(data)
                for keyword, value in pax.items():
                    if keyword not in _PAX_FIELDS:
                        continue
                    converted: Any = value
                    if keyword in _PAX_NUMBER_FIELDS:
                        try:
                            converted = _PAX_NUMBER_FIELDS[keyword](value)
                        except ValueError:
                            converted = 0
                    if keyword == "path":
                        member.name = value.rstrip("/")
                    elif keyword == "linkpath":
                        member.linkname = converted
                    else:
                        setattr(member, keyword, converted)
                if "size" in pax:
                    next_header = member.offset_data + (
                        _padded(member.size) if kind in _REGULAR or kind not in _SUPPORTED else 0)
                continue
            if kind == tarfile.DIRTYPE and long_strip and member.name.endswith("/"):
                member.name = member.name[:-1]
        member.pax_headers = pax
        if member.size < 0 or next_header < member.offset_data:
            raise Unsupported("a member of negative size")
        count += 1
        yield member
        position = next_header


__all__ = ["CHUNK", "Member", "Unsupported", "scan"]
