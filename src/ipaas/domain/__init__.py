"""The domain: application states, legal transitions and update plans. Pure: no I/O."""
