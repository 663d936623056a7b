"""sipum notifier service."""
