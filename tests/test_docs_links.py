"""Every relative link in the project's Markdown (README, docs/, examples/, leaderboards/) points
at a file that exists and, for a ``#anchor`` into a Markdown file, at a heading that GitHub
renders with that anchor. A renamed section or a moved file otherwise breaks a reader's link
without any test noticing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md"),
               *(REPO / "leaderboards").glob("*.md"), *(REPO / "leaderboards").glob("*/README.md")])

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores
    kept), spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(md):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = github_anchor(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _prose_lines(md: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in md.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def relative_links(md: Path) -> list[str]:
    """Link targets that are not URLs; link text may wrap over lines, inline code is no link."""
    text = re.sub(r"`[^`\n]*`", "", "\n".join(_prose_lines(md)))
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def test_the_anchor_rule_matches_githubs_on_our_headings() -> None:
    assert github_anchor("The quick profile's 5-step phantom gradient (2026-12-01): the reference table") == \
        "the-quick-profiles-5-step-phantom-gradient-2026-12-01-the-reference-table"
    assert github_anchor("`dear` protocol, test split, n = 64") == "dear-protocol-test-split-n--64"


def test_the_checker_sees_wrapped_links_and_reports_broken_ones(tmp_path: Path) -> None:
    md = tmp_path / "a.md"
    md.write_text("# Title here\n\nSee [the\nsection](a.md#title-here), [gone](b.md), `[code](x.md)`,\n"
                  "[bad anchor](a.md#nope) and [web](https://example.org).\n\n```\n[fenced](c.md)\n```\n")
    assert relative_links(md) == ["a.md#title-here", "b.md", "a.md#nope"]
    assert anchors(md) == {"title-here"}
    assert broken_links(md) == ["b.md (no such file)", "a.md#nope (no heading with anchor #nope in a.md)"]


def broken_links(md: Path) -> list[str]:
    broken = []
    for target in relative_links(md):
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    return broken


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(md: Path) -> None:
    broken = broken_links(md)
    assert not broken, f"{md.relative_to(REPO)}: broken links: " + "; ".join(broken)
