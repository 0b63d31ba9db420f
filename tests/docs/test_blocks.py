"""The docs harness's parser: which blocks are shell, what they run, what output they show."""

from __future__ import annotations

from pathlib import Path

from tests.docs.blocks import blocks, output_matches, shell_blocks

PAGE = """# Title

    ebpm registry up              # a comment
    ebpm push . \\
        localhost:5000/a:1.0.0

<!-- illustrative: a synopsis -->
    ebpm run REF [-- ARGS]

Prose.

    $ ebpm tags a
    1.0.0
    $ ebpm rm a
    error: nope

<!-- output-varies: events -->
```console
$ sudo ebpm run . --duration 1
PID  COMM
...
```

    [package]
    name = "x"

```python
import ebpm
```

```toml
x = 1
```
"""


def test_blocks_are_classified_with_their_markers_and_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    found = shell_blocks(page)
    assert [(b.line, b.marker) for b in found] == [
        (3, ""), (8, "illustrative"), (12, ""), (19, "output-varies")]
    script, synopsis, prompted, fenced = found
    assert [c.text for c in script.commands] == [
        "ebpm registry up              # a comment",
        "ebpm push . \\\n    localhost:5000/a:1.0.0"]
    assert all(c.expected is None for c in script.commands)
    assert synopsis.reason == "a synopsis"
    assert [(c.text, c.line, c.expected) for c in prompted.commands] == [
        ("ebpm tags a", 12, ("1.0.0",)), ("ebpm rm a", 14, ("error: nope",))]
    assert fenced.commands[0].expected == ("PID  COMM", "...")
    assert len(blocks(page)) == 7  # the TOML, Python and toml blocks are prose


def test_output_matching_with_ellipses() -> None:
    assert output_matches(("a  sha256:12...  pushed",), ["a  sha256:1234  pushed"])
    assert not output_matches(("a  sha256:12...  pushed",), ["a  sha256:99  pushed"])
    assert output_matches(("HEADER", "..."), ["HEADER"])
    assert output_matches(("HEADER", "..."), ["HEADER", "x", "y"])
    assert output_matches(("A", "...", "Z"), ["A", "b", "c", "Z"])
    assert not output_matches(("A", "B"), ["A", "B", "C"])
    assert output_matches(("x   ",), ["x"])  # trailing spaces do not count


def test_every_doc_page_is_found() -> None:
    from tests.docs.test_docs import ROOT, doc_files

    names = {p.relative_to(ROOT).as_posix() for p in doc_files()}
    assert "README.md" in names
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")} <= names
