"""API server: REST `/api/v1` (FastAPI), OpenAPI at /docs, auth, validation."""
