"""Logs: runtime and build logs with time windows, cursors, X-Last-Log-Nano and live follow."""
