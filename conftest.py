"""Root pytest configuration: shared fixtures live in ``sipum_testing``."""

pytest_plugins = [
    "sipum_testing.postgres",
    "sipum_testing.nats",
    "sipum_testing.s3",
    "sipum_testing.kamailio",
]
