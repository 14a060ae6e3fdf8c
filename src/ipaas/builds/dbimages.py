"""Database engine images (PostgreSQL, MariaDB, Redis) from the Debian archive, air-gapped.

Like the language bases (`images.py`): mmdebstrap on the builder's suite piped into
`docker import`, then one small layer with the container's script (`dbimage/ipaas-db`: start,
ready, admin, dump, restore), the engine's name and a label with the exact package versions.
Tagged `ipaas-db/<engine>:<major version>`; built by `ipaas images bootstrap` when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from ipaas.builds.images import (
    _TMPDIR,
    BootstrapError,
    Log,
    Recipe,
    _mmdebstrap_argv,
    _run,
    _run_pipeline,
    replacing,
)
from ipaas.domain.databases import ENGINES, LABEL_DB_PACKAGES, MOUNT_PATH, Engine, image_tag

LABEL_DB_ENGINE = "org.ipaas.db.engine"
LABEL_DB_SCRIPT = "org.ipaas.db.script"  # the digest of the image's ipaas-db script
SCRIPT = "ipaas-db"


def script_digest() -> str:
    text = (resources.files("ipaas.builds") / "dbimage" / SCRIPT).read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


def _script_of(tag: str) -> str | None:
    """The script digest an image carries; None when the image is missing."""
    fmt = '{{index .Config.Labels "' + LABEL_DB_SCRIPT + '"}}'
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", fmt, tag], capture_output=True, timeout=30
    )
    return result.stdout.decode().strip() if result.returncode == 0 else None


def engine_tags() -> dict[str, str]:
    """Engine name -> the image tag of each version it offers (one version each today)."""
    return {
        engine.value: image_tag(engine.value, version)
        for engine, info in ENGINES.items()
        for version in info.versions
    }


def missing_engine_images() -> list[str]:
    """Tags missing, or carrying an older ipaas-db script (refreshed in a second)."""
    wanted = script_digest()
    return [tag for tag in engine_tags().values() if _script_of(tag) != wanted]


def _dockerfile(rootfs: str, engine: Engine, packages: str) -> str:
    labels = (
        f"{LABEL_DB_ENGINE}={engine.value} {LABEL_DB_PACKAGES}={json.dumps(packages)} "
        f"{LABEL_DB_SCRIPT}={script_digest()}"
    )
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
            async with replacing([tag]):
                await _run(["docker", "build", "-q", "-t", tag, str(context)])
        except BaseException:
            with contextlib.suppress(BootstrapError):
                await _run(["docker", "image", "rm", rootfs])
            raise
    log(f"built {engine.value} database image {tag}: {versions}")


async def refresh_script(tag: str, log: Log) -> None:
    """An image whose packages are current but whose ipaas-db script is older: the new script
    is laid on top of it (no package download)."""
    with tempfile.TemporaryDirectory(prefix="ipaas-dbimage-") as tmp:
        context = Path(tmp)
        with resources.as_file(resources.files("ipaas.builds") / "dbimage" / SCRIPT) as src:
            shutil.copyfile(src, context / SCRIPT)
        (context / SCRIPT).chmod(0o755)
        (context / "Dockerfile").write_text(
            f"FROM {tag}\nCOPY {SCRIPT} /usr/local/bin/{SCRIPT}\n"
            f"LABEL {LABEL_DB_SCRIPT}={script_digest()}\n"
        )
        await _run(["docker", "build", "-q", "-t", tag, str(context)])
    log(f"refreshed the ipaas-db script of {tag}")


def engine_jobs(selected: set[str] | None, force: bool, log: Log) -> list[tuple[Engine, str, bool]]:
    """The engine images to build: (engine, tag, whole) for the selected ones missing, all
    selected ones with force; `whole` False when only the script is out of date."""
    jobs: list[tuple[Engine, str, bool]] = []
    wanted = script_digest()
    for name, tag in engine_tags().items():
        if selected is not None and name not in selected:
            continue
        found = _script_of(tag)
        if not force and found == wanted:
            log(f"{name}: {tag} already present")
            continue
        jobs.append((Engine(name), tag, force or found is None))
    return jobs
