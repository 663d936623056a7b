"""HTTP routes of the web-api."""
