"""Application service: create, update, deploy, stop, roll back, delete (orchestrates the parts)."""
