"""RTSP/1.0 server core (RFC 2326), sans-I/O.

- :mod:`sipum_protocol.rtsp.message` — requests, responses, interleaved ``$`` frames and the framer that
  splits a TCP byte stream into them;
- :mod:`sipum_protocol.rtsp.transport` — the ``Transport`` header (UDP ``client_port`` and TCP
  ``interleaved``);
- :mod:`sipum_protocol.rtsp.session` — the per-session state machine (RFC 2326 Appendix A.2) and the
  ``Range``/``RTP-Info`` values PLAY answers with;
- :mod:`sipum_protocol.rtsp.describe` — the SDP that ffmpeg and GStreamer accept for one stored message.
"""
