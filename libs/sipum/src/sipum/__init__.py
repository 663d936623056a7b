"""sipum platform: settings, database, blob store, events, service runtime, security.

The protocol cores live in ``sipum_protocol``; test support in ``sipum_testing``.
"""

__version__ = "0.1.0"
