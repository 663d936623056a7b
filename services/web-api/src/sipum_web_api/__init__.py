"""sipum web-api service."""
