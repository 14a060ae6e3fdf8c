"""Notice texts: one Jinja2 template per kind in text (its first line is the subject) and in
HTML (escaped). Jinja2 is imported with the first message rendered, not at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipaas.domain.notices import NoticeKind

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, folder: Path = TEMPLATES) -> None:
        self.folder = folder
        self._env: jinja2.Environment | None = None

    def _environment(self) -> jinja2.Environment:
        if self._env is None:
            import jinja2

            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(self.folder),
                autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
                undefined=jinja2.ChainableUndefined,
                keep_trailing_newline=True,
            )
        return self._env

    def render(self, kind: NoticeKind, context: dict[str, Any]) -> Rendered:
        env = self._environment()
        text = env.get_template(f"{kind.value}.txt").render(context)
        html = env.get_template(f"{kind.value}.html").render(context)
        subject, _, body = text.partition("\n")
        return Rendered(_one_line(subject), body.lstrip("\n"), html)


def _one_line(subject: str) -> str:
    """A subject is one header line, whatever an app name or reason held."""
    return " ".join(subject.split())[:200]
