"""Database add-ons: lifecycle, credentials, attachments to apps, verified backups."""
