"""Account lifecycle over the database, the event bus and the blob store — the service layer
the web-api's routes and the ``sipum-admin`` command share:

* ``removal`` — deleting a mailbox in the order the other services need;
* ``admin`` — what an administrator does: domains and their defaults, users and their
  overrides, password/PIN resets, the quota report, the system status.
"""
