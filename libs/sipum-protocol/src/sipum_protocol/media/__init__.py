"""Media core: RTP/RTCP, codecs, DTMF, jitter buffer, recording and playback engines."""
