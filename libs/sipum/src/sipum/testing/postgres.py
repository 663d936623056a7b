"""pytest fixtures: postgres (see module docstring of sipum.testing)."""
