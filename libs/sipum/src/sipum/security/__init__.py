"""Secrets handling: password and PIN hashing (argon2id), SIP digest HA1 values."""
