"""State store: SQLAlchemy 2 (async) on SQLite (WAL) or PostgreSQL; Alembic migrations."""
