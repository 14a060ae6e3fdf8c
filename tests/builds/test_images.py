"""`ipaas images`: bootstrapped base images (real engine, real busybox, real mmdebstrap runs
happen in the session fixture when images are missing)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipaas.builds import images
from ipaas.config import Settings
from tests import services

pytestmark = pytest.mark.docker


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def label(tag: str) -> str:
    fmt = '{{index .Config.Labels "' + images.LABEL_BASE + '"}}'
    return docker("image", "inspect", "--format", fmt, tag).strip()


def fake_pulled_image(tag: str, context: Path) -> str:
    """An unlabelled image under the tag, as a real pull would leave."""
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /marker\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        check=True,
        capture_output=True,
        env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    return image_id(tag)


@pytest.fixture
def static_tag() -> Iterator[str]:
    services.need("docker")
    tag = f"ipaas-test/static:{uuid.uuid4().hex[:8]}"
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def static_only(tag: str) -> Settings:
    settings = Settings()
    settings.build.base_images = {"static": tag}
    return settings


def test_wanted_images_include_standins() -> None:
    wanted = images.wanted_images(Settings())
    assert wanted["python"] == ["python:3.11-slim"]
    assert set(wanted) == {"python", "node", "go", "static"}
    settings = Settings()
    settings.build.base_images = {**settings.build.base_images, "python": "acme/py:1"}
    assert images.wanted_images(settings)["python"] == ["acme/py:1", "python:3.11-slim"]


def test_ca_certs_are_collected_from_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.crt").write_text("A")
    (tmp_path / "dir" / "ignored.txt").write_text("-")
    (tmp_path / "b.pem").write_text("B")
    names = images.stage_ca_certs(
        [tmp_path / "dir", tmp_path / "b.pem", tmp_path / "missing"], tmp_path / "out"
    )
    assert names == ["ipaas-extra-00-a.crt", "ipaas-extra-01-b.crt"]
    assert (tmp_path / "out" / names[1]).read_text() == "B"


async def test_bootstrap_is_fast_when_everything_exists(base_images: Settings) -> None:
    started = time.monotonic()
    assert await images.bootstrap(base_images, log=lambda _: None) == []
    assert time.monotonic() - started < 10
    assert images.missing_base_images(base_images) == []


def test_bootstrapped_python_image_has_python_and_the_host_cas(base_images: Settings) -> None:
    out = docker(
        "run",
        "--rm",
        "python:3.11-slim",
        "sh",
        "-c",
        "python3 --version; ls /usr/local/share/ca-certificates",
    )
    assert out.startswith("Python 3.")
    expected = images.collect_ca_certs(base_images.build.extra_ca_certs)
    assert out.count("ipaas-extra-") == len(expected)


async def test_static_bootstrap_does_not_replace_a_pulled_image(
    static_tag: str, tmp_path: Path
) -> None:
    pulled = fake_pulled_image(static_tag, tmp_path)
    settings = static_only(static_tag)
    assert await images.bootstrap(settings, only=["static"], log=lambda _: None) == []
    assert image_id(static_tag) == pulled
    rows = [r for r in images.list_base_images(settings) if r["tag"] == static_tag]
    assert rows[0]["state"] == "pulled"

    built = await images.bootstrap(settings, only=["static"], force=True, log=lambda _: None)
    assert built == [static_tag]
    assert image_id(static_tag) != pulled
    assert label(static_tag) == images.STANDIN
    # The image the tag named is not left dangling.
    assert pulled not in docker("images", "--all", "--quiet", "--no-trunc")
    out = docker("run", "--rm", static_tag, "sh", "-c", "command -v httpd && echo works")
    assert "works" in out


def test_cli_list_json(base_images: Settings) -> None:
    from ipaas.cli.images import images_app

    result = CliRunner().invoke(images_app, ["list", "--output", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    states = {row["tag"]: row["state"] for row in rows}
    for tag in base_images.build.base_images.values():
        assert states[tag] in ("standin", "pulled")


def test_cli_bootstrap_unknown_name() -> None:
    from ipaas.cli.images import images_app

    result = CliRunner().invoke(images_app, ["bootstrap", "--only", "cobol"])
    assert result.exit_code == 1
    assert "unknown base image" in result.output
