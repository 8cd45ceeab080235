r"""The SEARCH/REPLACE edit format: its markers, its blocks, and the one strict way to apply them.

The tokenizer (markers as special tokens), the model's validator and edit decoding, synthetic repair data
(the answer blocks) and the repair grader all use this module, so an answer the grader accepts is one the
model's own validator accepts. An answer holds blocks such as

    main.py
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

Parsing (`parse_edit_blocks`):
- Lines are separated by "\n" only (a "\r" stays part of its line; form feeds and Unicode line separators
  are ordinary characters). A marker is a whole line equal to the marker, surrounding whitespace ignored.
- Lines outside blocks (a file name line, prose) are ignored. Inside a block every line that is not a marker
  is content. A marker out of its place (a SEARCH inside a block, a REPLACE before the divider, a second
  divider, a divider or REPLACE outside a block) and a block left open are errors.
- SEARCH and REPLACE are whole lines: each line keeps its "\n" (one is added to a last line without it).

Applying (`apply_edit_blocks`, `apply_edits`):
- The file is read as whole lines too: a missing final "\n" is added first, so the result ends in "\n"
  (or is empty).
- Blocks apply in order, each to the text the blocks before it left. The SEARCH lines must match whole
  lines of that text at exactly one place (overlapping places count: "a\na\n" occurs twice in
  "a\na\na\n"); no place or several is an error naming the block. Nothing else is tolerated: not
  indentation, not trailing whitespace, not "\r\n" against "\n".
- An empty SEARCH is allowed only on an empty file, whose content becomes the REPLACE text.
"""

from __future__ import annotations

from dataclasses import dataclass

SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
MARKERS = (SEARCH, DIVIDER, REPLACE)
_NEXT_MARKER = {"outside": SEARCH, "search": DIVIDER, "replace": REPLACE}  # by parser state


def whole_lines(text: str) -> str:
    """`text` with a final "\\n" unless it is empty or has one."""
    return text if not text or text.endswith("\n") else text + "\n"


@dataclass
class EditBlock:
    search: str  # whole lines, each ending in "\n" (added when missing)
    replace: str

    def __post_init__(self):
        self.search, self.replace = whole_lines(self.search), whole_lines(self.replace)


def parse_edit_blocks(text: str) -> list[EditBlock]:
    """The blocks of an answer, in order; ValueError (naming the block and line) when the markers do not
    form blocks."""
    blocks: list[EditBlock] = []
    state, search, replace = "outside", [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if number == len(lines) and not line:
            break  # the text ended with "\n"
        marker = line.strip()
        if marker in MARKERS:
            expected = _NEXT_MARKER[state]
            if marker != expected:
                why = "outside a block" if state == "outside" else f"where {expected} was expected"
                raise ValueError(f"edit block {len(blocks) + 1} (line {number}): {marker} {why}")
            if marker == SEARCH:
                state, search, replace = "search", [], []
            elif marker == DIVIDER:
                state = "replace"
            else:
                blocks.append(EditBlock("".join(search), "".join(replace)))
                state = "outside"
        elif state == "search":
            search.append(line + "\n")
        elif state == "replace":
            replace.append(line + "\n")
    if state != "outside":
        missing = DIVIDER if state == "search" else REPLACE
        raise ValueError(f"edit block {len(blocks) + 1} is not terminated (missing {missing})")
    return blocks


def format_edit_blocks(blocks: list[EditBlock], file_name: str | None = None) -> str:
    """The answer text of `blocks`, each preceded by a `file_name` line when one is given."""
    name = f"{file_name}\n" if file_name else ""
    return "".join(f"{name}{SEARCH}\n{b.search}{DIVIDER}\n{b.replace}{REPLACE}\n" for b in blocks)


def apply_edit_blocks(source: str, blocks: list[EditBlock]) -> str:
    """Apply blocks in order; each SEARCH must match whole lines exactly once in the text as edited so far."""
    text = whole_lines(source)
    for n, block in enumerate(blocks, 1):
        if not block.search:
            if text:
                raise ValueError(f"edit block {n}: empty SEARCH is only allowed for an empty file")
            text = block.replace
            continue
        starts = line_matches(text, block.search)
        if len(starts) != 1:
            where = "not found" if not starts else f"found {len(starts)} times"
            raise ValueError(f"edit block {n}: SEARCH text {where} in the file: {block.search[:60]!r}")
        text = text[:starts[0]] + block.replace + text[starts[0] + len(block.search):]
    return text


def line_matches(text: str, search: str) -> list[int]:
    """Offsets where `search` (whole lines) matches whole lines of `text`: it starts a line there. Matches
    may overlap ("a\na\n" occurs twice in "a\na\na\n")."""
    starts, at = [], text.find(search)
    while at >= 0:
        if at == 0 or text[at - 1] == "\n":
            starts.append(at)
        at = text.find(search, at + 1)
    return starts


def apply_edits(source: str, answer: str) -> str:
    """The file after every block of `answer`; ValueError when the answer holds no block or a block does not
    parse or apply."""
    blocks = parse_edit_blocks(answer)
    if not blocks:
        raise ValueError("no SEARCH/REPLACE block in the answer")
    return apply_edit_blocks(source, blocks)
