"""docs/events.md must match the models: its generated block is re-rendered and compared."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sipum.events import EVENT_KINDS, EVENT_MODELS
from sipum.events.docs import BEGIN, END, main, render, splice

DOC = Path(__file__).resolve().parents[4] / "docs" / "events.md"


def test_generated_block_is_current() -> None:
    assert main(["--check", str(DOC)]) == 0, (
        "docs/events.md is stale: run `uv run python -m sipum.events.docs --write docs/events.md`"
    )


def test_check_notices_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "events.md"
    stale.write_text(DOC.read_text().replace('"duration_s": 5.0', '"duration_s": 6.0'))
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0
    assert stale.read_text() == DOC.read_text()


def test_every_subject_documented_with_a_valid_example() -> None:
    text = DOC.read_text()
    for kind in EVENT_KINDS:
        section = text.split(f"### `sipum.evt.{kind}`", 1)[1]
        block = re.search(r"```json\n(.*?)\n```", section, re.S)
        assert block, kind
        EVENT_MODELS[kind].model_validate(json.loads(block.group(1)))
    assert "sipum.media.allocate" in text
    assert "sipum.media.session.<session_id>.hangup" in text


def test_splice_keeps_the_prose() -> None:
    doc = f"intro\n{BEGIN}\nstale text\n{END}\noutro\n"
    out = splice(doc, render())
    assert out.startswith("intro\n") and out.endswith(f"{END}\noutro\n")
    assert "stale text" not in out
