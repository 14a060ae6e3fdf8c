"""Reading files of a user's checkout without letting the repository reach the host.

A repository controls every name in its tree: a file may be a symlink to /etc/shadow or
/dev/zero, a directory, or (on a checkout not made by git) a FIFO. Every read of repository
content goes through `read_text`/`read_bytes` here: the path must stay inside the checkout after
resolving symlinks, the last component is opened with O_NOFOLLOW|O_NONBLOCK (a FIFO cannot block
the open), only regular files are read, and never more than `max_bytes`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ipaas.builds.base import BuildFailed

DEFAULT_MAX_BYTES = 1_000_000
MAX_PATH_CHARS = 4096
_CHUNK = 65536


def unsafe(reason: str) -> BuildFailed:
    return BuildFailed(reason, user_fault=True, code="unsafe_path")


def _clean_relative(rel: str, what: str) -> PurePosixPath:
    """The relative path as parts; absolute paths, '..', NUL and huge names are refused."""
    if "\x00" in rel or len(rel) > MAX_PATH_CHARS:
        raise unsafe(f"{what} {rel[:80]!r} is not a valid path")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise unsafe(f"{what} {rel!r} must be a relative path inside the repository")
    return pure


def resolve(root: Path, rel: str, what: str = "file") -> Path:
    """The real path of root/rel; refused unless it stays inside root.

    The checkout is written by git before we read it and nothing writes it while we do, so
    resolving first and then opening the resolved path (last component with O_NOFOLLOW) cannot
    be raced by the repository.
    """
    pure = _clean_relative(rel, what)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *pure.parts))
    if real != real_root and not real.startswith(real_root + os.sep):
        raise unsafe(f"{what} {rel!r} points outside the repository")
    return Path(real)


def lexists(root: Path, rel: str, what: str = "file") -> bool:
    """Whether the name exists at all (a dangling or escaping symlink counts)."""
    pure = _clean_relative(rel, what)
    return os.path.lexists(os.path.join(root, *pure.parts))


def is_file(root: Path, rel: str, what: str = "file") -> bool:
    """True for a regular file inside root, False when absent; a name that exists but is a
    symlink out of the tree, a device, FIFO or socket is refused (the repository is hostile)."""
    if not lexists(root, rel, what):
        return False
    real = resolve(root, rel, what)
    try:
        mode = os.lstat(real).st_mode
    except FileNotFoundError:
        return False  # a symlink to a missing file inside the tree
    if stat.S_ISDIR(mode):
        return False
    if not stat.S_ISREG(mode):
        raise unsafe(f"{what} {rel!r} is not a regular file")
    return True


def is_dir(root: Path, rel: str, what: str = "directory") -> bool:
    if not lexists(root, rel, what):
        return False
    return os.path.isdir(resolve(root, rel, what))


def read_bytes(
    root: Path, rel: str, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = ""
) -> bytes:
    """The content of a regular file inside root, at most max_bytes (else `file_too_large`)."""
    what = what or rel
    real = resolve(root, rel, what)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise unsafe(f"{what} cannot be opened safely: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise unsafe(f"{what} is not a regular file")
        if info.st_size > max_bytes:
            raise _too_large(what, max_bytes)
        return _read_at_most(fd, max_bytes, what)
    finally:
        os.close(fd)


def read_text(root: Path, rel: str, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "") -> str:
    return read_bytes(root, rel, max_bytes=max_bytes, what=what).decode(errors="replace")


def _read_at_most(fd: int, max_bytes: int, what: str) -> bytes:
    """Read to the end, but never keep more than max_bytes (the size may have lied)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(what, max_bytes)
        chunks.append(chunk)


def _too_large(what: str, max_bytes: int) -> BuildFailed:
    return BuildFailed(
        f"{what} is larger than {max_bytes} bytes (build.max_read_kb)",
        user_fault=True,
        code="file_too_large",
    )


@dataclass(frozen=True)
class RepoFiles:
    """A folder of a checkout and the read cap: what plan detection is allowed to look at."""

    root: Path
    max_bytes: int = DEFAULT_MAX_BYTES

    def is_file(self, rel: str) -> bool:
        return is_file(self.root, rel)

    def read_text(self, rel: str) -> str | None:
        """The file's text, or None when there is no such regular file."""
        if not self.is_file(rel):
            return None
        return read_text(self.root, rel, max_bytes=self.max_bytes)

    def subdir(self, rel: str, what: str = "root directory") -> RepoFiles:
        """The files of a folder inside this one (which must not lead out of it)."""
        path = resolve(self.root, rel, what)
        if not path.is_dir():
            raise BuildFailed(
                f"{what} {rel!r} is not a directory", user_fault=True, code="bad_root_directory"
            )
        return RepoFiles(path, self.max_bytes)
