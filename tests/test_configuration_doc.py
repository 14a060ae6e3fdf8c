"""Every setting is documented in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ipaas.config import Settings

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def setting_names(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted path, key) of every leaf setting."""
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += setting_names(kind, f"{prefix}{name}.")
        else:
            names.append((prefix + name, name))
    return names


def test_every_setting_is_in_the_configuration_doc() -> None:
    doc = DOC.read_text()
    names = setting_names(Settings)
    assert len(names) > 30  # the walk found the nested sections too
    missing = [path for path, key in names if f"`{key}`" not in doc]
    assert missing == []
