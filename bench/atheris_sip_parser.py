"""Coverage-guided fuzzing of the SIP parser with atheris (libFuzzer for Python).

    uv run --with atheris python bench/atheris_sip_parser.py -atheris_runs=200000
    uv run --with atheris python bench/atheris_sip_parser.py -max_total_time=120 CORPUS_DIR

Complements bench/fuzz_sip_parser.py (deterministic, in CI): libFuzzer mutates toward new
branches of sipum_protocol.sip (message, uri, headers, sdp, digest). The same contract is checked: only
SipParseError (SdpParseError / DigestError for those parsers) may escape, answerable errors build
a response, accepted messages serialise idempotently. libFuzzer's own flags apply; the seed
messages of fuzz_sip_parser are added to the corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports(include=["sipum_protocol.sip"]):
    from sipum_protocol.sip import digest, sdp
    from sipum_protocol.sip.message import SipParseError, StreamFramer, make_response, parse_message

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_sip_parser import SEEDS, exercise  # noqa: E402


class _NoRandom:
    """exercise() takes an rng for its stream chunking; a fixed one keeps runs reproducible."""

    def randint(self, a: int, b: int) -> int:
        return (a + b) // 2


def one_input(data: bytes) -> None:
    exercise(data, _NoRandom())  # type: ignore[arg-type]
    framer = StreamFramer(max_message=8000)
    try:
        for framed in framer.feed(data):
            if framed != StreamFramer.PING:
                try:
                    msg = parse_message(framed)
                    bytes(msg)
                except SipParseError as err:
                    if err.request is not None:
                        bytes(make_response(err.request, err.status, err.reason))
    except SipParseError:
        pass
    try:
        description = sdp.SessionDescription.parse(data)
        try:
            sdp.negotiate(description, list(sdp.CODECS), address="192.0.2.1", port=4000)
        except sdp.NoCommonCodec:
            pass
    except sdp.SdpParseError:
        pass
    try:
        digest.parse_challenge(data.decode("utf-8", "replace"))
    except digest.DigestError:
        pass


def main() -> None:
    args = list(sys.argv)
    corpus = [a for a in args[1:] if not a.startswith("-")]
    if corpus:
        folder = Path(corpus[0])
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(SEEDS):
            (folder / f"seed{i}").write_bytes(seed)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
