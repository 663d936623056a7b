"""sipum transcriber: turns every voice message into text with a self-hosted engine."""
