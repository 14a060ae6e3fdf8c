"""Users and access: passwords, JWT access tokens, rotating refresh tokens, API tokens."""
