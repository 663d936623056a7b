"""Root pytest configuration: shared fixtures live in ``sipum.testing``."""

pytest_plugins = [
    "sipum.testing.postgres",
    "sipum.testing.nats",
    "sipum.testing.s3",
    "sipum.testing.kamailio",
]
