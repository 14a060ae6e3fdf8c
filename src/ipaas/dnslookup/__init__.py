"""DNS lookups: what a name resolves to and which TXT records it has (ownership checks)."""
