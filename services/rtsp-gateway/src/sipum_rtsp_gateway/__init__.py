"""sipum rtsp-gateway service."""
