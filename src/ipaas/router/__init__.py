"""Router: maps `<name>.<base_domain>` to the app's container (Caddy, or transparent)."""
