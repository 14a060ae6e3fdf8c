"""ipaas: a self-hosted platform-as-a-service. Give it a git repository, get a running app."""

__version__ = "0.1.0"
