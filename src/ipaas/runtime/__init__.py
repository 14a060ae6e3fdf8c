"""Runtime: runs app containers with limits and health checks (Docker engine)."""
