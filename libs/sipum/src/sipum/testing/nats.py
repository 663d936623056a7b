"""pytest fixtures: nats (see module docstring of sipum.testing)."""
