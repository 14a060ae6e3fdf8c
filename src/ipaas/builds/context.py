"""The build context tar, written by the platform itself, outside the user's checkout.

Why a tar of our own instead of docker-py's `path=`: docker-py reads `.dockerignore` with a
plain open() (a symlink to /dev/zero never ends), and the generated Dockerfile and CA files would
have to be written INTO the checkout, where a repository symlink named like them redirects the
write to any host file. Here nothing is written into the checkout: generated files come from a
folder the builder owns and are stored under GENERATED_DIR in the tar; the repository's entries
are added without following any symlink (a symlink is stored as a symlink, which the engine
resolves inside the context), special files are refused, and the total size is capped.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from ipaas.builds.base import BuildFailed
from ipaas.builds.ignore import IgnoreRules
from ipaas.builds.safefs import unsafe

GENERATED_DIR = ".ipaas-build"  # the repository's own entry of that name is left out
_HEADER = 512  # a tar header; counted so a million empty files cannot slip past the cap


class _Budget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def spend(self, size: int) -> None:
        self.used += _HEADER + size
        if self.used > self.max_bytes:
            raise BuildFailed(
                f"the build context is larger than {self.max_bytes // 1_000_000} MB"
                " (build.max_context_mb); leave build output and dependencies out with"
                " .dockerignore",
                user_fault=True,
                code="context_too_large",
            )


def write_context(
    out: BinaryIO,
    context: Path,
    generated: Path,
    *,
    ignore: IgnoreRules,
    max_bytes: int,
) -> int:
    """Write the tar of context (minus ignored paths) plus generated/ as GENERATED_DIR/ to out;
    return the bytes counted against max_bytes."""
    budget = _Budget(max_bytes)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_tree(tar, Path(os.path.realpath(context)), "", ignore, budget)
        _add_generated(tar, generated, budget)
    return budget.used


def _add_tree(
    tar: tarfile.TarFile, folder: Path, prefix: str, ignore: IgnoreRules, budget: _Budget
) -> None:
    with os.scandir(folder) as entries:
        ordered = sorted(entries, key=lambda entry: entry.name)
    for entry in ordered:
        rel = prefix + entry.name
        if rel == GENERATED_DIR:
            continue
        excluded = ignore.excluded(rel)
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if excluded and not ignore.has_exceptions:
                continue
            if not excluded:
                budget.spend(0)
                tar.addfile(_info(rel, tarfile.DIRTYPE, info))
            _add_tree(tar, Path(entry.path), rel + "/", ignore, budget)
        elif excluded:
            continue
        elif stat.S_ISLNK(info.st_mode):
            link = _info(rel, tarfile.SYMTYPE, info)
            link.linkname = os.readlink(entry.path)
            budget.spend(len(link.linkname))
            tar.addfile(link)
        elif stat.S_ISREG(info.st_mode):
            _add_file(tar, rel, entry.path, budget)
        else:
            raise unsafe(f"{rel!r} is neither a file, a folder nor a symlink")


def _add_file(tar: tarfile.TarFile, rel: str, path: str, budget: _Budget) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise unsafe(f"{rel!r} is not a regular file")
        budget.spend(info.st_size)
        tar.addfile(_info(rel, tarfile.REGTYPE, info), handle)


def _info(rel: str, kind: bytes, info: os.stat_result) -> tarfile.TarInfo:
    """Owner and group are not the repository's business: everything is root's in the image."""
    entry = tarfile.TarInfo(rel)
    entry.type = kind
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.mtime = int(info.st_mtime)
    entry.size = info.st_size if kind == tarfile.REGTYPE else 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    return entry


def _add_generated(tar: tarfile.TarFile, generated: Path, budget: _Budget) -> None:
    """The builder's own files (a trusted folder it created)."""
    for path in sorted([generated, *generated.rglob("*")]):
        inner = path.relative_to(generated).as_posix()
        rel = GENERATED_DIR if path == generated else f"{GENERATED_DIR}/{inner}"
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            budget.spend(0)
            tar.addfile(_info(rel, tarfile.DIRTYPE, info))
        elif stat.S_ISREG(info.st_mode):
            _add_file(tar, rel, str(path), budget)
