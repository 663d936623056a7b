"""Webhooks: mailbox events delivered as signed JSON to the endpoints users and domains set up.

``signature`` (the ``Sipum-Signature`` scheme), ``dispatcher`` (fan-out of events into the
outbox and its delivery loop). Where a request may go — the SSRF guard — is
``sipum.security.destinations``, shared with the web-api, which checks a URL when it is saved.
"""
