"""pytest fixtures: s3 (see module docstring of sipum.testing)."""
