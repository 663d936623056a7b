"""The notifier's fixtures (a real aiosmtpd server, a mailbox with one message) for every test
module here; they are defined beside the first tests that used them."""

from .test_notifier import smtp, world  # noqa: F401 - pytest finds fixtures by name
