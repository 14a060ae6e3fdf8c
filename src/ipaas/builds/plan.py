"""Build plans: what to install, build and run, decided from a checkout's files.

Pure: it reads a few small files under the given root and never runs anything. Every read goes
through safefs (a repository may hold symlinks to host files, FIFOs or huge files).
"""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ipaas.builds.base import BuildFailed, BuildOptions
from ipaas.builds.safefs import DEFAULT_MAX_BYTES, RepoFiles

LANGUAGES = ("python", "node", "go", "static")
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


MAX_LINE_CHARS = 8192  # longer Procfile lines are refused, not scanned


def procfile_web(root: Path | RepoFiles) -> str | None:
    """The command of the Procfile's `web:` process, if any.

    Plain string operations, no regular expression: the time is linear in the file's size
    whatever the repository puts in it.
    """
    files = root if isinstance(root, RepoFiles) else RepoFiles(root)
    text = files.read_text("Procfile")
    if text is None:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise _fail(
                f"Procfile line {number} is longer than {MAX_LINE_CHARS} characters",
                "bad_manifest",
            )
        name, colon, command = line.partition(":")
        if colon and name.strip() == "web" and command.strip():
            return command.strip()
    return None


def detect_plan(
    root: Path,
    options: BuildOptions,
    base_images: dict[str, str],
    *,
    max_read_bytes: int = DEFAULT_MAX_BYTES,
) -> Plan:
    """Decide how to build the checkout at root (the repository's top directory).

    Every file is read through safefs: inside the checkout, regular, at most max_read_bytes.
    """
    context = _context(RepoFiles(root, max_read_bytes), options.root_directory)
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


def context_files(root: Path, root_directory: str, max_read_bytes: int) -> RepoFiles:
    """The build context (root_directory of the checkout) as RepoFiles."""
    return _context(RepoFiles(root, max_read_bytes), root_directory)


def _context(root: RepoFiles, root_directory: str) -> RepoFiles:
    if not root_directory or root_directory in (".", "./"):
        return root
    return root.subdir(root_directory.strip("/"))


def _dockerfile(context: RepoFiles, options: BuildOptions) -> str | None:
    name = options.dockerfile_path or "Dockerfile"
    if context.is_file(name):
        return name
    if options.builder == "dockerfile":
        raise _fail(f"no {name} in the repository (the builder is 'dockerfile')", "no_dockerfile")
    return None


def _detect_language(context: RepoFiles) -> str:
    checks = (
        ("python", ("requirements.txt", "pyproject.toml", "Pipfile")),
        ("node", ("package.json",)),
        ("go", ("go.mod",)),
        ("static", ("index.html",)),
    )
    for language, files in checks:
        if any(context.is_file(f) for f in files):
            return language
    looked = "Dockerfile, " + ", ".join(f for _, files in checks for f in files)
    raise _fail(
        f"nothing to build: none of {looked} was found in the repository root"
        " (set root_directory if the app is in a subfolder)",
        "nothing_to_build",
    )


def _present(context: RepoFiles, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if context.is_file(n))


def _python_plan(context: RepoFiles, options: BuildOptions, images: dict[str, str]) -> Plan:
    pip = "pip install --no-cache-dir"
    notes: list[str] = []
    if context.is_file("requirements.txt"):
        manifests: tuple[str, ...] = ("requirements.txt",)
        install: str | None = f"{pip} -r requirements.txt"
    elif context.is_file("Pipfile"):
        manifests = _present(context, ("Pipfile", "Pipfile.lock"))
        install = f"{pip} pipenv && pipenv install --system" + (
            " --deploy" if "Pipfile.lock" in manifests else " --skip-lock"
        )
    elif context.is_file("pyproject.toml"):
        manifests = ("pyproject.toml",)
        deps = _pyproject_dependencies(context)
        install = f"{pip} " + " ".join(shlex.quote(d) for d in deps) if deps else None
        notes.append("dependencies from pyproject.toml [project].dependencies")
    else:
        manifests, install = (), None
    start = procfile_web(context)
    if start is None:
        entry = next((f for f in PYTHON_ENTRYPOINTS if context.is_file(f)), None)
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


def _pyproject_dependencies(context: RepoFiles) -> list[str]:
    text = context.read_text("pyproject.toml") or ""
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


def _node_plan(context: RepoFiles, options: BuildOptions, images: dict[str, str]) -> Plan:
    try:
        package = json.loads(context.read_text("package.json") or "{}")
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


def _node_install(context: RepoFiles, production: bool) -> tuple[str, tuple[str, ...], str]:
    """(package manager, lock files, install command); dev dependencies are kept when a build
    script needs them."""
    npm_flags = " --no-audit --no-fund" + (" --omit=dev" if production else "")
    if context.is_file("pnpm-lock.yaml"):
        prod = " --prod" if production else ""
        ensure = "(command -v pnpm >/dev/null || npm install -g --no-audit --no-fund pnpm)"
        return "pnpm", ("pnpm-lock.yaml",), f"{ensure} && pnpm install --frozen-lockfile{prod}"
    if context.is_file("yarn.lock"):
        prod = " --production" if production else ""
        ensure = "(command -v yarn >/dev/null || npm install -g --no-audit --no-fund yarn)"
        return "yarn", ("yarn.lock",), f"{ensure} && yarn install --frozen-lockfile{prod}"
    locks = _present(context, ("package-lock.json", "npm-shrinkwrap.json"))
    if locks:
        return "npm", locks, "npm ci" + npm_flags
    return "npm", (), "npm install" + npm_flags


def _node_start(
    context: RepoFiles, package: dict[str, Any], scripts: dict[str, Any], manager: str
) -> str | None:
    if "start" in scripts:
        return f"{manager} start"
    main = package.get("main")
    if isinstance(main, str) and context.is_file(main):
        return f"node {shlex.quote(main)}"
    entry = next((f for f in NODE_ENTRYPOINTS if context.is_file(f)), None)
    return f"node {entry}" if entry else None


def _go_plan(context: RepoFiles, options: BuildOptions, images: dict[str, str]) -> Plan:
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


def _static_plan(context: RepoFiles, options: BuildOptions, images: dict[str, str]) -> Plan:
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


def _apply_overrides(plan: Plan, context: RepoFiles, options: BuildOptions) -> Plan:
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
