"""Every relative link in README.md and docs/*.md points to a file that exists and, when it
names an anchor, to a heading of that file (GitHub's slugs); external links are not fetched."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of
# brackets (an image inside a link).
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class Link(NamedTuple):
    """One link as written: the file it is in, its line and its target."""

    source: Path
    line: int
    target: str


def _prose_lines(text: str, *, blank_code_spans: bool = True) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1, with code spans blanked (for
    links) or kept (for headings, whose anchors include the code's text)."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append((number, _CODE_SPAN.sub("", line) if blank_code_spans else line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup removed, lowercased, punctuation dropped,
    spaces to hyphens (letters, digits, `_` and `-` kept, in any script)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(
        char for char in text if char in " -_" or unicodedata.category(char)[0] in {"L", "M", "N"}
    )
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8"), blank_code_spans=False):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[Link]:
    """The relative links of a Markdown file (external and other-scheme links left out)."""
    text = path.read_text(encoding="utf-8")
    return [
        Link(path, number, match.group(1))
        for number, line in _prose_lines(text)
        for match in _LINK.finditer(line)
        if not _SCHEME.match(match.group(1))
    ]


def _shown(path: Path) -> str:
    """A path as the failure message shows it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _problem(link: Link) -> str | None:
    """Why a link is broken, or None when it resolves."""
    target, _, anchor = link.target.partition("#")
    file = link.source if not target else (link.source.parent / unquote(target)).resolve()
    if not file.exists():
        return f"{target} does not exist"
    if anchor:
        if file.suffix != ".md" or file.is_dir():
            return f"#{anchor} given for {target}, which is not a Markdown file"
        if unquote(anchor).lower() not in anchors(file):
            return f"{_shown(file)} has no heading with the anchor #{anchor}"
    return None


ALL_LINKS = [link for doc in DOCS for link in links(doc)]


def test_the_documents_are_found() -> None:
    assert ROOT / "README.md" in DOCS
    assert len(DOCS) > 1


@pytest.mark.parametrize(
    "link", ALL_LINKS, ids=[f"{x.source.name}:{x.line}:{x.target}" for x in ALL_LINKS]
)
def test_link_resolves(link: Link) -> None:
    problem = _problem(link)
    assert problem is None, f"{_shown(link.source)}:{link.line}: {problem}"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Quickstart", "quickstart"),
        ("Ack or spool: the produce path", "ack-or-spool-the-produce-path"),
        ("`sender_role` and `channel`", "sender_role-and-channel"),
        (
            "State: restore and restart (`make bench-restore`)",
            "state-restore-and-restart-make-bench-restore",
        ),
        ("Exactly-once (default)", "exactly-once-default"),
        ("入群事件 callbacks", "入群事件-callbacks"),
        ("[docs](docs/x.md) links", "docs-links"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_and_a_missing_anchor_are_caught(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text(
        "# Title\n\n## Same\n\n## Same\n\n## Route (`/v1/x`)\n", encoding="utf-8"
    )
    doc.write_text(
        "[ok](b.md#same-1) [code](b.md#route-v1x) [gone](c.md) [bad](b.md#nope) [self](#title) "
        "`[code](x.md)` [web](https://example.com/x)\n```\n[fenced](y.md)\n```\n# Title\n",
        encoding="utf-8",
    )
    found = {link.target: _problem(link) for link in links(doc)}
    assert set(found) == {"b.md#same-1", "b.md#route-v1x", "c.md", "b.md#nope", "#title"}
    assert found["b.md#same-1"] is None
    assert found["b.md#route-v1x"] is None
    assert found["#title"] is None
    assert found["c.md"] == "c.md does not exist"
    assert "no heading with the anchor #nope" in str(found["b.md#nope"])
