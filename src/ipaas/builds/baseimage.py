"""Which images a user's Dockerfile may build on: never another tenant's.

Every app's image lives in the same engine, so `FROM ipaas/<another app>` (or `COPY --from=` it)
would copy another tenant's code and secrets into this build. Before a user Dockerfile is built,
every image it names - FROM lines with their ARG defaults and build arguments substituted,
`COPY --from=`, `RUN --mount=from=`, and the same inside ONBUILD - must be an allowed one:
a configured base image, a match of `build.allowed_base_images`, an earlier stage, or an image of
this same app. The parser is hand-written and linear; anything it cannot resolve is refused.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ipaas.builds.base import BuildFailed

MAX_REFERENCE_CHARS = 255
_REFERENCE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@")
_HEX = frozenset("0123456789abcdef")
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")


def not_allowed(image: str, why: str = "") -> BuildFailed:
    return BuildFailed(
        f"the Dockerfile may not use image {image!r}{': ' + why if why else ''}; allowed are"
        " the platform's base images, build.allowed_base_images, earlier stages of the same"
        " Dockerfile and this app's own images",
        user_fault=True,
        code="base_image_not_allowed",
    )


@dataclass(frozen=True)
class ImagePolicy:
    base_images: tuple[str, ...] = ()  # exact references (build.base_images values)
    patterns: tuple[str, ...] = ()  # build.allowed_base_images, matched on normalized names
    own_repository: str = ""  # image_repository() of the app being built

    def allows(self, image: str) -> bool:
        normal = normalize(image)
        if normal is None:
            return False
        if normal in {normalize(base) for base in self.base_images}:
            return True
        if self.own_repository and _repository(normal) == normalize_repository(self.own_repository):
            return True
        if _looks_like_id(normal):
            return False  # the engine would look such a name up as an image id prefix
        return any(fnmatch.fnmatchcase(normal, pattern) for pattern in self.patterns)


def normalize(image: str) -> str | None:
    """The familiar form of a reference (`python:3.11-slim`, `ipaas/x:r1`, `host:5000/a/b:t`)
    with `:latest` made explicit; None when it is not a plain image reference."""
    if not image or len(image) > MAX_REFERENCE_CHARS or not set(image) <= _REFERENCE_CHARS:
        return None
    name, at, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    repo = normalize_repository(repo)
    if not repo or (at and not digest):
        return None
    if at:
        return f"{repo}{':' + tag if tag else ''}@{digest}"
    return f"{repo}:{tag or 'latest'}"


def normalize_repository(repo: str) -> str:
    first, slash, rest = repo.partition("/")
    if slash and first in _DOCKER_HUB:
        repo = rest
        if repo.startswith("library/") and repo.count("/") == 1:
            repo = repo.removeprefix("library/")
    return repo


def _repository(normal: str) -> str:
    name = normal.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _looks_like_id(normal: str) -> bool:
    repo = _repository(normal)
    return repo == "sha256" or set(repo) <= _HEX


@dataclass
class _Stages:
    names: list[str] = field(default_factory=list)  # lower-case stage names, in order

    def known(self, ref: str, *, by_index: bool = True) -> bool:
        """An earlier stage; `COPY --from=0` may use its index, `FROM 0` may not (the engine
        reads that as an image)."""
        if ref.isdigit() and by_index:
            return int(ref) < len(self.names)
        return ref.lower() in self.names


def check_dockerfile(text: str, policy: ImagePolicy, build_args: Mapping[str, str]) -> list[str]:
    """Refuse (base_image_not_allowed) a Dockerfile naming any image the policy does not allow;
    return the images it names (after substitution)."""
    meta_args: dict[str, str | None] = {}
    stages = _Stages()
    images: list[str] = []
    for instruction, rest in _instructions(text):
        if instruction == "ARG" and not stages.names:
            meta_args.update(_arg_values(rest, build_args))
        elif instruction == "FROM":
            image, stage = _from(rest, meta_args)
            if image.lower() != "scratch" and not stages.known(image, by_index=False):
                if not policy.allows(image):
                    raise not_allowed(image)
                images.append(image)
            stages.names.append(stage.lower())
        elif instruction in ("COPY", "RUN", "ONBUILD"):
            # Inside ONBUILD the stages are those of some later build: only images count.
            scope = stages if instruction != "ONBUILD" else _Stages()
            for ref in _from_flags(rest if instruction != "ONBUILD" else _onbuild(rest)):
                if not scope.known(ref) and ref.lower() != "scratch":
                    if "$" in ref or not policy.allows(ref):
                        raise not_allowed(ref)
                    images.append(ref)
    return images


def _instructions(text: str) -> Iterable[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each logical line: parser directives read, comments dropped,
    lines ending in the escape character joined."""
    escape = "\\"
    directives = True
    pending: list[str] = []  # parts of a continued instruction (a list: joining stays linear)
    for raw in text.splitlines():
        line = raw.strip()
        if directives:
            key, eq, value = line.removeprefix("#").partition("=")
            if line.startswith("#") and eq and key.strip().lower() in ("escape", "syntax"):
                if key.strip().lower() == "escape" and value.strip() in ("`", "\\"):
                    escape = value.strip()
                continue
            directives = False
        if not line or line.startswith("#"):
            continue  # comments and blank lines may sit inside a continued instruction
        if line.endswith(escape):
            pending.append(line[: -len(escape)])
            continue
        logical, pending = " ".join([*pending, line]), []
        yield _split(logical)
    if " ".join(pending).strip():
        yield _split(" ".join(pending))


def _split(logical: str) -> tuple[str, str]:
    words = logical.split(None, 1)
    return words[0].upper(), (words[1] if len(words) > 1 else "")


def _arg_values(rest: str, build_args: Mapping[str, str]) -> dict[str, str | None]:
    """ARG NAME[=default] ... ; a build argument given for a declared name wins."""
    values: dict[str, str | None] = {}
    for word in rest.split():
        name, eq, default = word.partition("=")
        value: str | None = _unquote(default) if eq else None
        values[name] = build_args.get(name, value)
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _from(rest: str, meta_args: Mapping[str, str | None]) -> tuple[str, str]:
    """(image after substitution, stage name or '') of `FROM [--flag=..] image [AS name]`."""
    words = [w for w in rest.split() if not w.startswith("--")]
    if not words:
        raise not_allowed("", "a FROM line names no image")
    image = _substitute(words[0], meta_args)
    stage = words[2] if len(words) >= 3 and words[1].lower() == "as" else ""
    return image, stage


def _substitute(word: str, variables: Mapping[str, str | None]) -> str:
    """$NAME, ${NAME}, ${NAME:-w}, ${NAME-w}, ${NAME:+w}, ${NAME+w} with w free of `$`;
    anything else with a `$` is refused rather than guessed."""
    out: list[str] = []
    index = 0
    while index < len(word):
        char = word[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        if word.startswith("{", index + 1):
            end = word.find("}", index + 2)
            if end == -1:
                raise not_allowed(word, "unterminated ${")
            out.append(_expand(word[index + 2 : end], variables, word))
            index = end + 1
        else:
            end = index + 1
            while end < len(word) and word[end] in _NAME_CHARS:
                end += 1
            out.append(_expand(word[index + 1 : end], variables, word))
            index = end
    return "".join(out)


def _expand(body: str, variables: Mapping[str, str | None], word: str) -> str:
    name = body
    operator, alternative = "", ""
    for op in (":-", ":+", "-", "+"):
        cut = body.find(op)
        if cut > 0:
            name, operator, alternative = body[:cut], op, body[cut + len(op) :]
            break
    valid = name[:1] in _NAME_START and set(name) <= _NAME_CHARS
    if not valid or "$" in alternative:
        raise not_allowed(word, "a variable the platform cannot resolve")
    value = variables.get(name)
    if operator == ":-":
        return value or alternative
    if operator == "-":
        return alternative if value is None else value
    if operator == ":+":
        return alternative if value else ""
    if operator == "+":
        return "" if value is None else alternative
    return value or ""


def _from_flags(rest: str) -> list[str]:
    """Images or stages named by `--from=x` and `--mount=...,from=x,...` flags."""
    refs: list[str] = []
    for word in rest.split():
        if not word.startswith("--"):
            break  # flags come first
        flag, _, value = word[2:].partition("=")
        if flag.lower() == "from":
            refs.append(_unquote(value))
        elif flag.lower() == "mount":
            for option in _unquote(value).split(","):
                key, _, option_value = option.partition("=")
                if key.strip().lower() == "from":
                    refs.append(_unquote(option_value.strip()))
    return refs


def _onbuild(rest: str) -> str:
    """The flags of the instruction an ONBUILD line carries (for COPY and RUN)."""
    instruction, arguments = _split(rest) if rest.strip() else ("", "")
    return arguments if instruction in ("COPY", "RUN", "ADD") else ""
