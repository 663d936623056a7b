#!/usr/bin/env python3
"""Render sipum's default system prompts into a cache directory (run at install / image build).

Usage: uv run python scripts/generate_prompts.py DIRECTORY [--rate 8000 --rate 16000] [--prune]

Needs Debian's espeak-ng and sox. Output is reproducible: the same texts, voice and tool versions
give the same bytes; see docs/media.md, section Prompts.
"""

from sipum_protocol.media.prompts import main

if __name__ == "__main__":
    raise SystemExit(main())
