"""Reading a hostile checkout: symlinks out, devices, FIFOs, huge files and lines (real files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ipaas.builds import safefs
from ipaas.builds.base import BuildFailed, BuildOptions
from ipaas.builds.plan import detect_plan, procfile_web

IMAGES = {"python": "py:t", "node": "node:t", "go": "go:t", "static": "bb:t"}


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    return repo


def refused(call: object, code: str = "unsafe_path") -> BuildFailed:
    assert callable(call)
    with pytest.raises(BuildFailed) as info:
        call()
    assert info.value.user_fault and info.value.code == code, info.value.reason
    return info.value


def test_symlink_to_a_host_file_is_not_read(tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_text("web: cat /etc/shadow\n")
    repo = repo_with(tmp_path, {"index.html": "hi"})
    (repo / "Procfile").symlink_to(host_file)
    error = refused(lambda: procfile_web(repo))
    assert "outside the repository" in error.reason and "shadow" not in error.reason
    # A relative climb out is refused the same way.
    (repo / "Procfile").unlink()
    (repo / "Procfile").symlink_to("../host-secret")
    refused(lambda: procfile_web(repo))


def test_dotdot_and_absolute_names_are_refused(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"a": "x"})
    for name in ("../repo/a", "/etc/passwd", "sub/../../x"):
        refused(lambda name=name: safefs.read_text(repo, name))


def test_dev_zero_fails_at_once(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"index.html": "hi"})
    (repo / ".dockerignore").symlink_to("/dev/zero")
    started = time.monotonic()
    refused(lambda: safefs.read_bytes(repo, ".dockerignore"))
    assert time.monotonic() - started < 1


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer; the helper must not."""
    repo = repo_with(tmp_path, {"index.html": "hi"})
    os.mkfifo(repo / "Procfile")
    started = time.monotonic()
    error = refused(lambda: procfile_web(repo))
    assert "regular file" in error.reason
    assert time.monotonic() - started < 1


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"index.html": "hi"})
    (repo / "Procfile").mkdir()
    assert procfile_web(repo) is None
    refused(lambda: safefs.read_bytes(repo, "Procfile"))


def test_huge_file_is_refused_by_size(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"package.json": "{}" + " " * 5000})
    error = refused(
        lambda: detect_plan(repo, BuildOptions(), IMAGES, max_read_bytes=4096), "file_too_large"
    )
    assert "4096" in error.reason


def test_symlink_inside_the_tree_is_followed(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"Procfile.real": "web: ./serve\n", "index.html": "hi"})
    (repo / "Procfile").symlink_to("Procfile.real")
    assert procfile_web(repo) == "./serve"


def test_a_huge_procfile_line_is_refused_quickly(tmp_path: Path) -> None:
    """A regex with a lazy group then `\\s*$` took quadratic time on such a line (~8 s here)."""
    repo = repo_with(tmp_path, {"Procfile": "web: a" + " " * 40_000 + "b\n", "index.html": "x"})
    started = time.monotonic()
    error = refused(lambda: detect_plan(repo, BuildOptions(), IMAGES), "bad_manifest")
    assert time.monotonic() - started < 1
    assert "Procfile line 1" in error.reason


def test_long_but_allowed_procfile_line_parses_in_linear_time(tmp_path: Path) -> None:
    command = "a" + " " * 8000 + "b"
    repo = repo_with(tmp_path, {"Procfile": f"worker: x\n  web :  {command}  \n"})
    started = time.monotonic()
    assert procfile_web(repo) == command
    assert time.monotonic() - started < 0.1
