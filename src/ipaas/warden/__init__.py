"""Warden: watches the runtime, restarts crashed apps with backoff, reconciles desired vs actual."""
