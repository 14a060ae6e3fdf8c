"""Database engine images (PostgreSQL, MariaDB, Redis) from the Debian archive, air-gapped.

Like the language bases (`images.py`): mmdebstrap on the builder's suite piped into
`docker import`, then one small layer with the container's script (`dbimage/ipaas-db`: start,
ready, admin, dump, restore), the engine's name and a label with the exact package versions.
Tagged `ipaas-db/<engine>:<major version>`; built by `ipaas images bootstrap` when missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from ipaas.builds.images import (
    _TMPDIR,
    BootstrapError,
    Log,
    Recipe,
    _image_exists,
    _mmdebstrap_argv,
    _run,
    _run_pipeline,
)
from ipaas.domain.databases import ENGINES, LABEL_DB_PACKAGES, MOUNT_PATH, Engine, image_tag

LABEL_DB_ENGINE = "org.ipaas.db.engine"
SCRIPT = "ipaas-db"


def engine_tags() -> dict[str, str]:
    """Engine name -> the image tag of each version it offers (one version each today)."""
    return {
        engine.value: image_tag(engine.value, version)
        for engine, info in ENGINES.items()
        for version in info.versions
    }


def missing_engine_images() -> list[str]:
    return [tag for tag in engine_tags().values() if not _image_exists(tag)]


def _dockerfile(rootfs: str, engine: Engine, packages: str) -> str:
    labels = f"{LABEL_DB_ENGINE}={engine.value} {LABEL_DB_PACKAGES}={json.dumps(packages)}"
    return "\n".join(
        [
            f"FROM {rootfs}",
            f"COPY {SCRIPT} /usr/local/bin/{SCRIPT}",
            f"ENV IPAAS_DB_ENGINE={engine.value} LANG=C.UTF-8",
            f"LABEL {labels}",
            f"VOLUME {MOUNT_PATH}",
            "STOPSIGNAL SIGINT",  # PostgreSQL's and Redis's fast, clean shutdown
            f'ENTRYPOINT ["/usr/local/bin/{SCRIPT}", "start"]',
            "",
        ]
    )


async def _package_versions(rootfs: str, packages: tuple[str, ...]) -> str:
    fmt = "${Package}=${Version} "
    argv = ["docker", "run", "--rm", "--network", "none", rootfs, "dpkg-query", "-W", "-f", fmt]
    return (await _run([*argv, *packages])).strip()


async def build_engine_image(engine: Engine, tag: str, log: Log) -> None:
    info = ENGINES[engine]
    recipe = Recipe(engine.value, (*info.packages, "ca-certificates"), ())
    log(f"building {engine.value} database image as {tag}")
    with tempfile.TemporaryDirectory(prefix="ipaas-dbimage-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "TMPDIR": _TMPDIR}
        rootfs = await _run_pipeline(
            _mmdebstrap_argv(recipe, work / "certs"), ["docker", "import", "-"], env
        )
        # The imported tree stays untagged under the final image (its parent layer).
        try:
            versions = await _package_versions(rootfs, info.packages)
            context = work / "context"
            context.mkdir()
            with resources.as_file(resources.files("ipaas.builds") / "dbimage" / SCRIPT) as src:
                shutil.copyfile(src, context / SCRIPT)
            (context / SCRIPT).chmod(0o755)
            (context / "Dockerfile").write_text(_dockerfile(rootfs, engine, versions))
            await _run(["docker", "build", "-q", "-t", tag, str(context)])
        except BaseException:
            with contextlib.suppress(BootstrapError):
                await _run(["docker", "image", "rm", rootfs])
            raise
    log(f"built {engine.value} database image {tag}: {versions}")


def engine_jobs(selected: set[str] | None, force: bool, log: Log) -> list[tuple[Engine, str]]:
    """The engine images to build: the selected ones missing (all selected ones with force)."""
    jobs: list[tuple[Engine, str]] = []
    for name, tag in engine_tags().items():
        if selected is not None and name not in selected:
            continue
        if not force and _image_exists(tag):
            log(f"{name}: {tag} already present")
            continue
        jobs.append((Engine(name), tag))
    return jobs
