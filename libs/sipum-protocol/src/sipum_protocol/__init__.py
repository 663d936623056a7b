"""sipum's protocol cores, sans-I/O: bytes and ``now`` in, bytes and timers out.

``sip`` (messages, SDP, digest, transactions, dialogs, the user agent, registration, MWI bodies
and its one asyncio adapter), ``media`` (RTP/RTCP, codecs, jitter buffer, RFC 4733 DTMF,
recording, playback, the media session and its asyncio driver) and ``rtsp`` (the RTSP/1.0
server core). Only the standard library and codec libraries are imported here.
"""

__version__ = "0.1.0"
