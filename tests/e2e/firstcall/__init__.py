"""The first call end to end (issue 5): the whole system as processes, a phone, a caller.

* :mod:`.system` starts Kamailio, an SMTP server, the five services and the fixtures' real
  servers around them, and knows their addresses;
* :mod:`.phone` is the telephony around it: sipp phones (register, ring, answer) and our own
  caller (SIP user agent of ``sipum_protocol.sip`` + an RTP peer sending known audio and RFC 4733 digits);
* :mod:`.audio` is the known test signal and the correlation used to compare what came back.

Used by ``tests/e2e/test_first_call.py`` and ``bench/first_call.py``.
"""
