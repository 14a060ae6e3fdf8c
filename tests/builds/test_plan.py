"""Plan detection and Dockerfile rendering (pure; no engine needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ipaas.builds.base import BuildFailed, BuildOptions
from ipaas.builds.dockerfile import CA_DIR, render, start_cmd
from ipaas.builds.plan import Plan, detect_plan, procfile_web

from .conftest import SAMPLES

IMAGES = {"python": "py:t", "node": "node:t", "go": "go:t", "static": "bb:t"}


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def plan_of(root: Path, **options: object) -> Plan:
    return detect_plan(root, BuildOptions(**options), IMAGES)  # type: ignore[arg-type]


def sample(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(SAMPLES / name, tmp_path / name))


# --- detection ------------------------------------------------------------------------------


def test_python_sample_uses_requirements_and_procfile(tmp_path: Path) -> None:
    plan = plan_of(sample(tmp_path, "python-flask"))
    assert plan.language == "python"
    assert plan.base_image == "py:t"
    assert plan.manifests == ("requirements.txt",)
    assert plan.install_command == "pip install --no-cache-dir -r requirements.txt"
    assert plan.start_command == "gunicorn --bind 0.0.0.0:${PORT:-8080} --workers 2 app:app"


def test_node_sample_uses_npm_ci_and_npm_start(tmp_path: Path) -> None:
    plan = plan_of(sample(tmp_path, "node-express"))
    assert plan.language == "node"
    assert plan.package_manager == "npm"
    assert plan.manifests == ("package.json", "package-lock.json")
    assert plan.install_command.startswith("npm ci")  # type: ignore[union-attr]
    assert "--omit=dev" in plan.install_command  # type: ignore[operator]
    assert plan.start_command == "npm start"
    assert plan.build_command is None


def test_go_sample_builds_a_static_binary_on_the_small_image(tmp_path: Path) -> None:
    plan = plan_of(sample(tmp_path, "go-http"))
    assert plan.language == "go"
    assert plan.manifests == ("go.mod",)
    assert plan.build_command and "go build -trimpath -o /app/server ." in plan.build_command
    assert plan.runtime_image == "bb:t"
    assert plan.start_command == "/app/server"


def test_static_sample_served_by_busybox_httpd(tmp_path: Path) -> None:
    plan = plan_of(sample(tmp_path, "static-site"))
    assert plan.language == "static"
    assert plan.install_command is None
    assert plan.start_command == "httpd -f -v -p ${PORT:-8080} -h /app"


def test_dockerfile_wins_unless_builder_is_plan(tmp_path: Path) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM x\n", "requirements.txt": "", "app.py": ""})
    assert plan_of(root).language == "dockerfile"
    assert plan_of(root).dockerfile == "Dockerfile"
    assert plan_of(root, builder="plan").language == "python"
    assert plan_of(root, language="python").language == "python"


def test_custom_dockerfile_path(tmp_path: Path) -> None:
    root = tree(tmp_path, {"deploy/App.Dockerfile": "FROM x\n", "index.html": ""})
    assert plan_of(root).language == "static"
    plan = plan_of(root, dockerfile_path="deploy/App.Dockerfile")
    assert (plan.language, plan.dockerfile) == ("dockerfile", "deploy/App.Dockerfile")


def test_builder_dockerfile_without_dockerfile_fails(tmp_path: Path) -> None:
    tree(tmp_path, {"index.html": ""})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path, builder="dockerfile")
    assert info.value.user_fault and info.value.code == "no_dockerfile"


@pytest.mark.parametrize(
    ("lock", "manager", "install"),
    [
        ("package-lock.json", "npm", "npm ci --no-audit --no-fund --omit=dev"),
        ("npm-shrinkwrap.json", "npm", "npm ci --no-audit --no-fund --omit=dev"),
        ("yarn.lock", "yarn", "yarn install --frozen-lockfile --production"),
        ("pnpm-lock.yaml", "pnpm", "pnpm install --frozen-lockfile --prod"),
        (None, "npm", "npm install --no-audit --no-fund --omit=dev"),
    ],
)
def test_node_lock_files(tmp_path: Path, lock: str | None, manager: str, install: str) -> None:
    files = {"package.json": json.dumps({"main": "index.js"}), "index.js": ""}
    if lock:
        files[lock] = "{}"
    plan = plan_of(tree(tmp_path, files))
    assert plan.package_manager == manager
    assert plan.install_command and plan.install_command.endswith(install)
    assert plan.manifests == ("package.json", *([lock] if lock else []))
    assert plan.start_command == "node index.js"


def test_node_build_script_keeps_dev_dependencies(tmp_path: Path) -> None:
    package = {"scripts": {"build": "tsc", "start": "node dist/index.js"}}
    tree(tmp_path, {"package.json": json.dumps(package), "yarn.lock": ""})
    plan = plan_of(tmp_path)
    assert plan.build_command == "yarn run build"
    assert plan.install_command and "--production" not in plan.install_command
    assert plan.start_command == "yarn start"


def test_node_without_start_fails_clearly(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{}"})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path)
    assert info.value.code == "no_start_command" and "package.json" in info.value.reason


def test_invalid_package_json_is_a_user_fault(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{nope"})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path)
    assert info.value.user_fault and info.value.code == "bad_manifest"


def test_python_pyproject_dependencies_and_main_py(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["flask>=3", "rich"]\n'
    tree(tmp_path, {"pyproject.toml": pyproject, "main.py": ""})
    plan = plan_of(tmp_path)
    assert plan.manifests == ("pyproject.toml",)
    assert plan.install_command == "pip install --no-cache-dir 'flask>=3' rich"
    assert plan.start_command == "python main.py"


def test_python_pipfile(tmp_path: Path) -> None:
    tree(tmp_path, {"Pipfile": "", "Pipfile.lock": "{}", "app.py": ""})
    plan = plan_of(tmp_path)
    assert plan.manifests == ("Pipfile", "Pipfile.lock")
    assert plan.install_command and "pipenv install --system --deploy" in plan.install_command
    assert plan.start_command == "python app.py"


def test_python_without_entry_point_fails_clearly(tmp_path: Path) -> None:
    tree(tmp_path, {"requirements.txt": "flask\n", "lib.py": ""})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path)
    assert info.value.user_fault and info.value.code == "no_start_command"
    assert "Procfile" in info.value.reason


def test_procfile_web_line_wins(tmp_path: Path) -> None:
    tree(tmp_path, {"Procfile": "worker: x\nweb:   ./run --port $PORT  \n", "go.mod": "module m\n"})
    assert procfile_web(tmp_path) == "./run --port $PORT"
    assert plan_of(tmp_path).start_command == "./run --port $PORT"


def test_overrides_win(tmp_path: Path) -> None:
    tree(tmp_path, {"sub/requirements.txt": "", "sub/app.py": "", "index.html": ""})
    plan = plan_of(
        tmp_path,
        root_directory="sub",
        install_command="pip install -r requirements.txt --pre",
        build_command="python -m compileall .",
        start_command="python app.py --fast",
    )
    assert plan.language == "python" and plan.root_directory == "sub"
    assert plan.install_command == "pip install -r requirements.txt --pre"
    assert plan.build_command == "python -m compileall ."
    assert plan.start_command == "python app.py --fast"


def test_language_override(tmp_path: Path) -> None:
    tree(tmp_path, {"index.html": "", "package.json": '{"scripts": {"start": "serve"}}'})
    assert plan_of(tmp_path).language == "node"
    assert plan_of(tmp_path, language="static").language == "static"
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path, language="cobol")
    assert info.value.code == "bad_language"


def test_nothing_buildable_lists_what_was_looked_for(tmp_path: Path) -> None:
    tree(tmp_path, {"README.md": "hello"})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path)
    assert info.value.user_fault and info.value.code == "nothing_to_build"
    for name in ("Dockerfile", "requirements.txt", "package.json", "go.mod", "index.html"):
        assert name in info.value.reason


@pytest.mark.parametrize("root", ["../elsewhere", "/etc", "a/../../b"])
def test_root_directory_cannot_escape(tmp_path: Path, root: str) -> None:
    tree(tmp_path, {"index.html": ""})
    with pytest.raises(BuildFailed) as info:
        plan_of(tmp_path, root_directory=root)
    assert info.value.user_fault


def test_symlinked_manifest_outside_the_repo_is_refused(tmp_path: Path) -> None:
    """A Procfile pointing at a host file is neither read nor silently skipped."""
    outside = tree(tmp_path / "outside", {"Procfile": "web: secret\n"})
    repo = tree(tmp_path / "repo", {"app.py": "", "requirements.txt": ""})
    (repo / "Procfile").symlink_to(outside / "Procfile")
    with pytest.raises(BuildFailed) as info:
        plan_of(repo)
    assert info.value.user_fault and info.value.code == "unsafe_path"
    assert "secret" not in info.value.reason


def test_plan_to_dict_is_plain_data(tmp_path: Path) -> None:
    data = plan_of(sample(tmp_path, "node-express")).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["language"] == "node" and data["manifests"] == ["package.json", "package-lock.json"]


# --- rendering ------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("name", ["python-flask", "node-express", "go-http"])
def test_install_layer_comes_before_the_source(tmp_path: Path, name: str) -> None:
    plan = plan_of(sample(tmp_path, name))
    rendered = render(plan, with_ca=True)
    lines = _lines(rendered.text)
    copy_manifests = next(i for i, line in enumerate(lines) if line.startswith('COPY ["'))
    install = lines.index("RUN " + json.dumps(["sh", "-c", plan.install_command]))
    copy_all = lines.index("COPY . .")
    assert copy_manifests < install < copy_all
    assert rendered.install_step == install + 1
    assert rendered.steps == len(lines)
    assert json.loads(lines[copy_manifests][5:]) == [*plan.manifests, "./"]


@pytest.mark.parametrize("name", ["python-flask", "node-express", "static-site"])
def test_metadata_comes_before_the_code_so_a_code_change_rebuilds_only_the_copy(
    tmp_path: Path, name: str
) -> None:
    """The classic builder commits a container per instruction; after `COPY . .` nothing is
    cached on a code-only rebuild, so port, stop signal and start command come first."""
    lines = render(plan_of(sample(tmp_path, name)), with_ca=False).text.splitlines()
    copy = lines.index("COPY . .")
    after = [line.split()[0] for line in lines[copy + 1 :]]
    assert not {"EXPOSE", "STOPSIGNAL", "CMD"} & set(after), lines
    assert {"EXPOSE", "CMD"} <= {line.split()[0] for line in lines[:copy]}


def test_python_dockerfile_uses_a_venv_and_trusts_the_ca(tmp_path: Path) -> None:
    text = render(plan_of(sample(tmp_path, "python-flask")), with_ca=True).text
    assert 'RUN ["sh", "-c", "python3 -m venv /opt/venv"]' in text
    assert "PATH=/opt/venv/bin:/usr/local/sbin:" in text
    assert f"COPY {CA_DIR}/ /usr/local/share/ca-certificates/" in text
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"):
        assert f"{var}=/etc/ssl/certs/ca-certificates.crt" in text
    assert "ENV PORT=8080" in text and "EXPOSE 8080" in text and "STOPSIGNAL SIGINT" in text
    last = next(line for line in text.splitlines() if line.startswith("CMD "))
    assert json.loads(last[4:]) == [
        "sh",
        "-c",
        "exec gunicorn --bind 0.0.0.0:${PORT:-8080} --workers 2 app:app",
    ]


def test_without_ca_no_cert_layer(tmp_path: Path) -> None:
    text = render(plan_of(sample(tmp_path, "python-flask")), with_ca=False).text
    assert CA_DIR not in text and "PIP_CERT" not in text


def test_go_dockerfile_is_two_stages(tmp_path: Path) -> None:
    text = render(plan_of(sample(tmp_path, "go-http")), with_ca=True).text
    assert text.count("FROM ") == 2
    assert "FROM go:t AS build" in text and "FROM bb:t" in text
    assert "COPY --from=build /app/server /app/server" in text
    assert text.strip().endswith('CMD ["/app/server"]')


def test_go_custom_build_stays_single_stage(tmp_path: Path) -> None:
    root = sample(tmp_path, "go-http")
    plan = plan_of(root, build_command="go build -o /usr/local/bin/app .", start_command="app")
    assert plan.runtime_image is None
    assert render(plan, with_ca=False).text.count("FROM ") == 1


def test_static_dockerfile(tmp_path: Path) -> None:
    rendered = render(plan_of(sample(tmp_path, "static-site")), with_ca=True)
    assert rendered.install_step is None
    assert "FROM bb:t" in rendered.text and CA_DIR not in rendered.text
    assert "httpd -f -v -p ${PORT:-8080} -h /app" in rendered.text


def test_user_commands_cannot_inject_instructions(tmp_path: Path) -> None:
    root = sample(tmp_path, "python-flask")
    plan = plan_of(root, install_command="true\nCOPY /etc/shadow /x", build_command="a\nUSER x")
    lines = _lines(render(plan, with_ca=False).text)
    assert not any(line.startswith(("COPY /etc", "USER")) for line in lines)


def test_build_args_are_declared_and_validated(tmp_path: Path) -> None:
    plan = plan_of(sample(tmp_path, "node-express"))
    assert "ARG NPM_TOKEN" in render(plan, with_ca=False, build_args=["NPM_TOKEN"]).text
    with pytest.raises(BuildFailed) as info:
        render(plan, with_ca=False, build_args=["BAD NAME\nRUN x"])
    assert info.value.user_fault


@pytest.mark.parametrize(
    ("start", "cmd"),
    [
        ("/app/server", ["/app/server"]),
        ("npm start", ["npm", "start"]),
        ("node server.js --port $PORT", ["sh", "-c", "exec node server.js --port $PORT"]),
        ("cd web && node x.js", ["sh", "-c", "cd web && node x.js"]),
        ("FOO=1 node x.js", ["sh", "-c", "FOO=1 node x.js"]),
    ],
)
def test_start_command_forms(start: str, cmd: list[str]) -> None:
    assert json.loads(start_cmd(start)[4:]) == cmd
