"""The build context tar and .dockerignore rules, on real files (no engine needed)."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from ipaas.builds.base import BuildFailed
from ipaas.builds.context import GENERATED_DIR, write_context
from ipaas.builds.ignore import IgnoreRules


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def tar_of(
    context: Path, generated: Path, ignore: str = "", max_bytes: int = 10**8
) -> tarfile.TarFile:
    out = io.BytesIO()
    write_context(out, context, generated, ignore=IgnoreRules(ignore), max_bytes=max_bytes)
    out.seek(0)
    return tarfile.open(fileobj=out)


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "generated", {"Dockerfile": "FROM x\n", "ca/a.crt": "PEM"})


def test_symlinks_are_stored_not_followed(tmp_path: Path, generated: Path) -> None:
    host = tmp_path / "host-secret"
    host.write_text("host secret")
    (tmp_path / "host-dir").mkdir()
    (tmp_path / "host-dir" / "inner").write_text("host secret too")
    repo = make_tree(tmp_path / "repo", {"index.html": "hi"})
    (repo / "secret").symlink_to(host)
    (repo / "dir").symlink_to(tmp_path / "host-dir")
    tar = tar_of(repo, generated)
    members = {m.name: m for m in tar.getmembers()}
    assert members["secret"].issym() and members["secret"].linkname == str(host)
    assert members["dir"].issym() and "dir/inner" not in members
    content = b"".join(
        tar.extractfile(m).read()
        for m in tar.getmembers()
        if m.isfile()  # type: ignore[union-attr]
    )
    assert b"host secret" not in content


def test_generated_files_live_under_their_own_folder(tmp_path: Path, generated: Path) -> None:
    """The repository's own folder of that name is left out: it cannot replace the
    Dockerfile the platform generated."""
    repo = make_tree(tmp_path / "repo", {"index.html": "hi", f"{GENERATED_DIR}/Dockerfile": "evil"})
    tar = tar_of(repo, generated)
    dockerfile = tar.extractfile(f"{GENERATED_DIR}/Dockerfile")
    assert dockerfile is not None and dockerfile.read() == b"FROM x\n"
    names = tar.getnames()
    assert names.count(f"{GENERATED_DIR}/Dockerfile") == 1
    assert f"{GENERATED_DIR}/ca/a.crt" in names and "index.html" in names


def test_context_over_the_cap_is_refused(tmp_path: Path, generated: Path) -> None:
    repo = make_tree(tmp_path / "repo", {"big": "x" * 200_000})
    with pytest.raises(BuildFailed) as info:
        tar_of(repo, generated, max_bytes=100_000)
    assert info.value.user_fault and info.value.code == "context_too_large"


def test_many_empty_files_count_against_the_cap(tmp_path: Path, generated: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"f{i}": "" for i in range(300)})
    with pytest.raises(BuildFailed) as info:
        tar_of(repo, generated, max_bytes=100_000)
    assert info.value.code == "context_too_large"


def test_ignored_paths_do_not_count_and_are_not_sent(tmp_path: Path, generated: Path) -> None:
    repo = make_tree(
        tmp_path / "repo",
        {"node_modules/big": "x" * 200_000, "keep/a.txt": "a", "keep/b.log": "b", "c.log": "c"},
    )
    tar = tar_of(repo, generated, "node_modules\n**/*.log\n!c.log\n", max_bytes=100_000)
    names = set(tar.getnames())
    assert "keep/a.txt" in names and "c.log" in names
    assert "keep/b.log" not in names and not any(n.startswith("node_modules") for n in names)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, generated: Path) -> None:
    repo = make_tree(tmp_path / "repo", {"index.html": "hi"})
    os.mkfifo(repo / "pipe")
    started = time.monotonic()
    with pytest.raises(BuildFailed) as info:
        tar_of(repo, generated)
    assert info.value.code == "unsafe_path" and time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        ("*.pyc", "a.pyc", True),
        ("*.pyc", "sub/a.pyc", False),  # `*` stays within a segment
        ("**/*.pyc", "sub/deep/a.pyc", True),
        ("build", "build/out/x", True),  # a folder rule covers what is under it
        ("/build", "build", True),
        ("docs/*.md\n!docs/keep.md", "docs/keep.md", False),
        ("a?c", "abc", True),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "bx", False),
        ("src/**/test", "src/test", True),
        ("# comment\n\n", "anything", False),
    ],
)
def test_dockerignore_semantics(rules: str, path: str, excluded: bool) -> None:
    assert IgnoreRules(rules).excluded(path) is excluded


def test_pathological_patterns_match_in_linear_time() -> None:
    """Patterns like these make a regex translation backtrack for hours."""
    rules = IgnoreRules("\n".join(["*a*a*a*a*a*a*a*a*a*a*b", "**/**/**/**/**/**/**/**/x*y*z"]))
    name = "a" * 250
    path = "/".join(["a" * 40] * 40)
    started = time.monotonic()
    assert not rules.excluded(name)
    assert not rules.excluded(path)
    assert time.monotonic() - started < 1
