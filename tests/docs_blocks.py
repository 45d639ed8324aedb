"""Reading the docs as tests see them: the fenced code blocks of README.md and docs/**/*.md, with their language and
line numbers, and the tutorial steps (a ``console`` block after a ``<!-- tutorial-step -->`` marker)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
STEP_MARK = "<!-- tutorial-step -->"


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    after_step_mark: bool

    @property
    def where(self) -> str:
        rel = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{rel}:{self.line}"


def doc_files() -> list[Path]:
    """The user docs: README.md and every Markdown page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file (indented fences too, as inside list items)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        prev = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        blocks.append(Block(path, i + 1, lang.lower(), "\n".join(body) + "\n", prev == STEP_MARK))
        i = j + 1
    return blocks


def prose(path: Path) -> str:
    """The file's text outside fenced code blocks."""
    out, inside, fence = [], False, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line)
        if m and not inside:
            inside, fence = True, m.group(2)
        elif inside and line.strip().startswith(fence):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def tutorial_steps(path: Path) -> list[tuple[str, list[str]]]:
    """(command, the output lines the page shows) for each marked ``console`` block: ``$ CMD`` then its output."""
    steps = []
    for b in code_blocks(path):
        if not b.after_step_mark:
            continue
        assert b.lang == "console", f"{b.where}: a tutorial step must be a console block"
        first, *rest = b.text.rstrip("\n").splitlines()
        assert first.startswith("$ "), f"{b.where}: a tutorial step starts with '$ COMMAND'"
        steps.append((first[2:], [line for line in rest if line.strip() and line.strip() != "..."]))
    return steps


NUMBER = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)*(?!\w)")  # not the digits of a name (lite2, IMG_0)


def mask_numbers(text: str) -> str:
    """Numbers become N and runs of spaces one space: what may differ between the page and a real run (the digits
    inside a name, such as efficientnet-lite2, stay)."""
    return re.sub(r"\s+", " ", NUMBER.sub("N", text)).strip()
