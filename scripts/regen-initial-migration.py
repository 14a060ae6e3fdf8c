"""Regenerate the initial Alembic revision from the models (only while no release is out)."""

import pathlib
import re
import tempfile

from alembic import command

from ipaas.store.migrate import MIGRATIONS, _config

for old in (MIGRATIONS / "versions").glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    command.revision(
        _config(f"sqlite+aiosqlite:///{tmp}/gen.db"),
        message="initial schema",
        autogenerate=True,
        rev_id="0001",
    )
for path in (MIGRATIONS / "versions").glob("0001_*.py"):
    text = re.sub(
        r"ipaas\.store\.models\.UTCDateTime\([^)]*\)",
        "sa.DateTime(timezone=True)",
        path.read_text(),
    )
    pathlib.Path(path).write_text(text)
