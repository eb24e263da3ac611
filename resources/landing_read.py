"""Reading a landed file without trusting the landing zone: only regular files inside it, never through
a link, never past a bound.

Anyone who can write to the landing zone can put a symlink (to `/etc/shadow`, to `/dev/zero`), a FIFO
(a read blocks for ever), a name that is not UTF-8 or a gzip bomb there. The listing reports such
entries (`entry_problem`, `safe_name`); `open_landed` walks the path one component at a time with
`O_NOFOLLOW` and checks what it opened with `fstat`, so a link or FIFO swapped in after the listing is
refused too; `read_bounded` and `gunzip_bounded` stop at `limit` bytes.

A hard link (a regular file with other names, `st_nlink > 1`) is read like any regular file, on
purpose: `ln` is a producer's atomic way to land a file, as a rename is, and a link gives no more than a
copy would: the kernel (fs.protected_hardlinks, on by default) lets its maker link only a file it owns or
may read and write, and its bytes are fixed when linked, where a symlink is resolved with the reader's
rights when read. Erasure blanks the zone's name of it (the rename makes it a file of its own); another
name of the file outside the zone is its producer's copy, as it would be after `cp`.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import stat

READ_CHUNK = 1 << 20  # decompressed bytes per step: a bomb is stopped within a MB of the bound
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs
DIRECTORY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
KINDS = {
    stat.S_IFLNK: "a symlink (links are never followed)",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


class NotLandingFile(ValueError):
    """A landing-zone entry that is never read: not a regular file inside the zone, or a name that is not
    UTF-8. Permanent: the same entry fails the same way every time."""


class FileTooLarge(OSError):
    """A landed file (decompressed, for `.gz`) over the per-file bound. Permanent, but an OSError: a
    reader that must see every landed file (erasure) counts it as unreadable, not as foreign."""


class UnknownCompression(OSError):
    """A landed file compressed in a format no lakemail reader decodes (bzip2, xz, zstd, zip): what it holds
    cannot be seen. Permanent, but an OSError: erasure counts it as unreadable."""


class FileChanging(OSError):
    """A landed file whose size moved while it was read (a producer writing in place). Transient."""


def entry_problem(mode: int) -> str | None:
    """Why an entry of this `lstat` mode is never read (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file but {KINDS.get(stat.S_IFMT(mode), 'a special file')}; never read"


def safe_name(path: str) -> tuple[str, str | None]:
    """`path` as it can be stored (UTF-8), and why it is never read when it could not be stored as is.

    A name that is not valid UTF-8 arrives from the OS with surrogate escapes; it is recorded with its
    bad bytes written as `\\xNN`.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        escaped = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return escaped, "the file name is not valid UTF-8; rename the file to land it"
    return path, None


def _inside(path: str) -> list[str]:
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise NotLandingFile(f"not a landed file name inside the landing zone: {path!r}")
    return parts


def open_landed(root: str | os.PathLike[str], path: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file `path` under `root`, and its `fstat`.

    No component is followed through a symlink and the last one must be a regular file when opened;
    raises NotLandingFile otherwise, OSError when it cannot be opened.
    """
    parts = _inside(path)
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, DIRECTORY_FLAGS, dir_fd=directory)
            os.close(directory)
            directory = inner
        descriptor = os.open(parts[-1], FILE_FLAGS, dir_fd=directory)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a link
            raise NotLandingFile("a symlink on the way to it; links are never followed") from None
        raise
    finally:
        os.close(directory)
    opened = os.fstat(descriptor)
    problem = entry_problem(opened.st_mode)
    if problem is not None:
        os.close(descriptor)
        raise NotLandingFile(problem)
    return descriptor, opened


def read_bounded(root: str | os.PathLike[str], path: str, limit: int) -> bytes:
    """The bytes of the landed regular file `path` (see `open_landed`), at most `limit` of them."""
    return read_opened(root, path, limit)[0]


def read_opened(root: str | os.PathLike[str], path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """`read_bounded`, with the `fstat` of what was read."""
    descriptor, opened = open_landed(root, path)
    with open(descriptor, "rb", buffering=0, closefd=True) as handle:
        if opened.st_size > limit:
            raise FileTooLarge(f"{opened.st_size} bytes, over the bound of {limit} (LAKEMAIL_MAX_FILE_MB)")
        data = handle.read(opened.st_size) if opened.st_size else b""
        while len(data) < opened.st_size and (more := handle.read(opened.st_size - len(data))):
            data += more  # a short read (over 2 GB, some network file systems): rare, so copying is fine
        if len(data) != opened.st_size or handle.read(1):
            raise FileChanging(f"the file changed size while it was read ({opened.st_size} bytes at open)")
    return data, opened


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """`data` gunzipped a chunk at a time (every member), failing past `limit` decompressed bytes.

    Raises FileTooLarge past the bound; gzip.BadGzipFile, EOFError or zlib.error for a broken file, an
    empty one included (Python's gzip reads 0 bytes as an empty stream; gzip itself, a truncated file).
    """
    if not data:  # a gzip of nothing is 20 bytes: 0 is an upload or a copy that stopped before its start
        raise gzip.BadGzipFile("0 bytes: not a gzip file (a gzip of nothing is 20 bytes)")
    out = io.BytesIO()  # grows in place; getvalue() hands over its buffer without a copy
    with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
        while chunk := stream.read(READ_CHUNK):
            out.write(chunk)
            if out.tell() > limit:
                raise FileTooLarge(
                    f"more than {limit} bytes once decompressed, over the bound (LAKEMAIL_MAX_FILE_MB)"
                )
    return out.getvalue()


GZIP_MAGIC = b"\x1f\x8b"  # never the start of text: 0x8b is no UTF-8 lead byte
OTHER_COMPRESSIONS = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)|\xfd7zXZ\x00|\x28\xb5\x2f\xfd|PK\x03\x04")


def decode_landed(data: bytes, limit: int) -> tuple[bytes, bool]:
    """The content of landed bytes of any name by their own encoding, and whether they were gzip: gunzipped
    when they start with gzip's magic (`gunzip_bounded`, whatever the file's name or folder), as they are
    otherwise. Raises UnknownCompression for another compressed format, as `gunzip_bounded` otherwise."""
    if data.startswith(GZIP_MAGIC):
        return gunzip_bounded(data, limit), True
    if OTHER_COMPRESSIONS.match(data) is not None:
        raise UnknownCompression("compressed in a format lakemail does not read (bzip2, xz, zstd or zip)")
    return data, False
