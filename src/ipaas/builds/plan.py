"""Build plans: what to install, build and run, decided from a checkout's files.

Pure: it reads a few small files under the given root and never runs anything. Files are read
only when they resolve inside the root (a repository may hold symlinks to host files).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ipaas.builds.base import BuildFailed, BuildOptions

LANGUAGES = ("python", "node", "go", "static")
MAX_MANIFEST_BYTES = 1_000_000
DEFAULT_PORT = 8080
PYTHON_ENTRYPOINTS = ("app.py", "main.py", "server.py", "wsgi.py")
NODE_ENTRYPOINTS = ("server.js", "index.js", "app.js", "main.js")
GO_BINARY = "/app/server"


@dataclass(frozen=True)
class Plan:
    language: str  # python | node | go | static | dockerfile
    base_image: str  # for "dockerfile": informational ("" - the Dockerfile names it)
    root_directory: str = ""  # build context, relative to the checkout
    dockerfile: str | None = None  # the user's Dockerfile, relative to the context
    manifests: tuple[str, ...] = ()  # copied before the install step (its cache key)
    install_command: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    runtime_image: str | None = None  # a second, smaller stage for compiled apps
    package_manager: str | None = None
    detected_from: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["manifests"] = list(self.manifests)
        data["detected_from"] = list(self.detected_from)
        data["notes"] = list(self.notes)
        return data


def _fail(reason: str, code: str) -> BuildFailed:
    return BuildFailed(reason, user_fault=True, code=code)


def safe_relative(root: Path, rel: str, what: str) -> Path:
    """root/rel, refusing absolute paths, '..' and symlinks that lead out of root."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise _fail(f"{what} {rel!r} must be a relative path inside the repository", "bad_path")
    path = root / pure
    try:
        resolved = path.resolve()
        resolved.relative_to(root.resolve())
    except (OSError, ValueError):
        raise _fail(f"{what} {rel!r} points outside the repository", "bad_path") from None
    return path


def _is_file(root: Path, name: str) -> bool:
    try:
        return safe_relative(root, name, "file").is_file()
    except BuildFailed:
        return False


def _read(root: Path, name: str) -> str | None:
    if not _is_file(root, name):
        return None
    path = root / name
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise _fail(f"{name} is larger than {MAX_MANIFEST_BYTES} bytes", "bad_manifest")
    return path.read_text(errors="replace")


def procfile_web(root: Path) -> str | None:
    """The command of the Procfile's `web:` process, if any."""
    text = _read(root, "Procfile")
    if text is None:
        return None
    for line in text.splitlines():
        match = re.match(r"^\s*web\s*:\s*(.+?)\s*$", line)
        if match:
            return match.group(1)
    return None


def detect_plan(root: Path, options: BuildOptions, base_images: dict[str, str]) -> Plan:
    """Decide how to build the checkout at root (the repository's top directory)."""
    context = _context(root, options.root_directory)
    if options.builder != "plan" and options.language is None:
        dockerfile = _dockerfile(context, options)
        if dockerfile is not None:
            return Plan(
                language="dockerfile",
                base_image="",
                root_directory=options.root_directory,
                dockerfile=dockerfile,
                detected_from=(dockerfile,),
            )
    language = options.language or _detect_language(context)
    if language not in LANGUAGES:
        raise _fail(
            f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}", "bad_language"
        )
    if language not in base_images:
        raise BuildFailed(
            f"no base image is configured for {language}", user_fault=False, code="no_base_image"
        )
    plan = _PLANNERS[language](context, options, base_images)
    return _apply_overrides(plan, context, options)


def _context(root: Path, root_directory: str) -> Path:
    if not root_directory or root_directory in (".", "./"):
        return root
    context = safe_relative(root, root_directory.strip("/"), "root directory")
    if not context.is_dir():
        raise _fail(f"root directory {root_directory!r} is not a directory", "bad_root_directory")
    return context


def _dockerfile(context: Path, options: BuildOptions) -> str | None:
    name = options.dockerfile_path or "Dockerfile"
    safe_relative(context, name, "Dockerfile path")
    if _is_file(context, name):
        return name
    if options.builder == "dockerfile":
        raise _fail(f"no {name} in the repository (the builder is 'dockerfile')", "no_dockerfile")
    return None


def _detect_language(context: Path) -> str:
    checks = (
        ("python", ("requirements.txt", "pyproject.toml", "Pipfile")),
        ("node", ("package.json",)),
        ("go", ("go.mod",)),
        ("static", ("index.html",)),
    )
    for language, files in checks:
        if any(_is_file(context, f) for f in files):
            return language
    looked = "Dockerfile, " + ", ".join(f for _, files in checks for f in files)
    raise _fail(
        f"nothing to build: none of {looked} was found in the repository root"
        " (set root_directory if the app is in a subfolder)",
        "nothing_to_build",
    )


def _present(context: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if _is_file(context, n))


def _python_plan(context: Path, options: BuildOptions, images: dict[str, str]) -> Plan:
    pip = "pip install --no-cache-dir"
    notes: list[str] = []
    if _is_file(context, "requirements.txt"):
        manifests: tuple[str, ...] = ("requirements.txt",)
        install: str | None = f"{pip} -r requirements.txt"
    elif _is_file(context, "Pipfile"):
        manifests = _present(context, ("Pipfile", "Pipfile.lock"))
        install = f"{pip} pipenv && pipenv install --system" + (
            " --deploy" if "Pipfile.lock" in manifests else " --skip-lock"
        )
    elif _is_file(context, "pyproject.toml"):
        manifests = ("pyproject.toml",)
        deps = _pyproject_dependencies(context)
        install = f"{pip} " + " ".join(shlex.quote(d) for d in deps) if deps else None
        notes.append("dependencies from pyproject.toml [project].dependencies")
    else:
        manifests, install = (), None
    start = procfile_web(context)
    if start is None:
        entry = next((f for f in PYTHON_ENTRYPOINTS if _is_file(context, f)), None)
        start = f"python {entry}" if entry else None
    return Plan(
        language="python",
        base_image=images["python"],
        manifests=manifests,
        install_command=install,
        start_command=start,
        package_manager="pip",
        detected_from=manifests,
        notes=tuple(notes),
    )


def _pyproject_dependencies(context: Path) -> list[str]:
    text = _read(context, "pyproject.toml") or ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"pyproject.toml is not valid TOML: {exc}", "bad_manifest") from None
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise _fail(
            "pyproject.toml [project].dependencies must be a list of strings", "bad_manifest"
        )
    return list(deps)


def _node_plan(context: Path, options: BuildOptions, images: dict[str, str]) -> Plan:
    try:
        package = json.loads(_read(context, "package.json") or "{}")
    except json.JSONDecodeError as exc:
        raise _fail(f"package.json is not valid JSON: {exc}", "bad_manifest") from None
    if not isinstance(package, dict):
        raise _fail("package.json must hold a JSON object", "bad_manifest")
    raw_scripts = package.get("scripts")
    scripts: dict[str, Any] = raw_scripts if isinstance(raw_scripts, dict) else {}
    has_build = "build" in scripts
    manager, lock, install = _node_install(context, production=not has_build)
    run = {"npm": "npm run", "yarn": "yarn run", "pnpm": "pnpm run"}[manager]
    return Plan(
        language="node",
        base_image=images["node"],
        manifests=("package.json", *lock),
        install_command=install,
        build_command=f"{run} build" if has_build else None,
        start_command=procfile_web(context) or _node_start(context, package, scripts, manager),
        package_manager=manager,
        detected_from=("package.json", *lock),
    )


def _node_install(context: Path, production: bool) -> tuple[str, tuple[str, ...], str]:
    """(package manager, lock files, install command); dev dependencies are kept when a build
    script needs them."""
    npm_flags = " --no-audit --no-fund" + (" --omit=dev" if production else "")
    if _is_file(context, "pnpm-lock.yaml"):
        prod = " --prod" if production else ""
        ensure = "(command -v pnpm >/dev/null || npm install -g --no-audit --no-fund pnpm)"
        return "pnpm", ("pnpm-lock.yaml",), f"{ensure} && pnpm install --frozen-lockfile{prod}"
    if _is_file(context, "yarn.lock"):
        prod = " --production" if production else ""
        ensure = "(command -v yarn >/dev/null || npm install -g --no-audit --no-fund yarn)"
        return "yarn", ("yarn.lock",), f"{ensure} && yarn install --frozen-lockfile{prod}"
    locks = _present(context, ("package-lock.json", "npm-shrinkwrap.json"))
    if locks:
        return "npm", locks, "npm ci" + npm_flags
    return "npm", (), "npm install" + npm_flags


def _node_start(
    context: Path, package: dict[str, Any], scripts: dict[str, Any], manager: str
) -> str | None:
    if "start" in scripts:
        return f"{manager} start"
    main = package.get("main")
    if isinstance(main, str) and _is_file(context, main):
        return f"node {shlex.quote(main)}"
    entry = next((f for f in NODE_ENTRYPOINTS if _is_file(context, f)), None)
    return f"node {entry}" if entry else None


def _go_plan(context: Path, options: BuildOptions, images: dict[str, str]) -> Plan:
    manifests = _present(context, ("go.mod", "go.sum"))
    return Plan(
        language="go",
        base_image=images["go"],
        manifests=manifests,
        install_command="go mod download",
        build_command=f"CGO_ENABLED=0 go build -trimpath -o {GO_BINARY} .",
        start_command=procfile_web(context) or GO_BINARY,
        # A static binary runs on the tiny static image instead of the 700 MB toolchain.
        runtime_image=images.get("static"),
        package_manager="go",
        detected_from=manifests,
    )


def _static_plan(context: Path, options: BuildOptions, images: dict[str, str]) -> Plan:
    return Plan(
        language="static",
        base_image=images["static"],
        start_command=procfile_web(context)
        or "httpd -f -v -p ${PORT:-" + str(DEFAULT_PORT) + "} -h /app",
        detected_from=_present(context, ("index.html",)),
    )


_PLANNERS = {
    "python": _python_plan,
    "node": _node_plan,
    "go": _go_plan,
    "static": _static_plan,
}


def _apply_overrides(plan: Plan, context: Path, options: BuildOptions) -> Plan:
    """User-given commands win over detection; a missing start command is an error."""
    changes: dict[str, Any] = {"root_directory": options.root_directory}
    if options.install_command is not None:
        changes["install_command"] = options.install_command or None
    if options.build_command is not None:
        changes["build_command"] = options.build_command or None
        # A custom build may put its output anywhere: keep the single toolchain stage.
        changes["runtime_image"] = None
    if options.start_command:
        changes["start_command"] = options.start_command
    plan = replace(plan, **changes)
    if not plan.start_command:
        raise _fail(_no_start_hint(plan.language), "no_start_command")
    return plan


def _no_start_hint(language: str) -> str:
    hints = {
        "python": "add a Procfile with a `web:` line, an app.py/main.py, or set start_command",
        "node": 'add "scripts": {"start": ...} or "main" to package.json, or set start_command',
    }
    hint = hints.get(language, "set start_command")
    return f"cannot tell how to start this {language} app: {hint}"
