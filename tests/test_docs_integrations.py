"""docs/integrations.md cannot rot: every snippet marked ``<!-- from FILE -->`` is cut,
verbatim, from that example file, and the example files are what the tests run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "integrations.md"
SNIPPET = re.compile(r"<!-- from (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def test_every_marked_snippet_is_in_its_example_file() -> None:
    snippets = SNIPPET.findall(DOC.read_text(encoding="utf-8"))
    assert len(snippets) >= 7
    for path, code in snippets:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert code in source, f"docs/integrations.md's snippet from {path} is not in it"


def test_the_readme_links_the_page() -> None:
    assert "(docs/integrations.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
