"""sipum registrar-agent service."""
