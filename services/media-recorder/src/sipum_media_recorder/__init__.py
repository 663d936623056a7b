"""sipum media-recorder service."""
