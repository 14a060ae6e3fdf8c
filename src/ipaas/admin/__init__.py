"""Operator use cases that span the platform's parts (a user and everything they own)."""
