"""Pytest fixtures shared by every package's tests (real PostgreSQL, NATS, moto S3).

Each submodule is a pytest plugin registered by the root ``conftest.py``.
"""
