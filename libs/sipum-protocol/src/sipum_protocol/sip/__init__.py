"""SIP protocol core (RFC 3261 and friends), sans-I/O with thin asyncio adapters."""
