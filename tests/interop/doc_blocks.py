"""The fenced code blocks of README.md and docs/*.md, and what runs each one.

The rule (docs/development.md, "Code blocks in the docs"): every fence closes and has
an info string; every block either runs in the test command (here, or in the test
`COVERED` names) or is output (`text`), or the line before it is
`<!-- not run: REASON -->`. `classify` says which, and `test_docs_sql.py` fails on a
block that none of them claims.
"""

import dataclasses
import re
import subprocess

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NOT_RUN = re.compile(r"^\s*<!-- not run: (?P<reason>\S.*?) -->\s*$")

# The top-level sections of custody's config file (docs/configuration.md).
CONFIG_SECTIONS = {
    "listen", "routes", "upstream_tls", "upstream", "audit", "limits", "shutdown", "runtime",
    "identity", "inspection", "policy", "safety", "sessions", "anomalies", "intercept",
}

# Blocks another test runs as written: (document, predicate on the info words) → the test.
COVERED = [
    ("auditor-queries.md", lambda w: w[0] == "sql", "tests/interop/test_auditor_queries.py"),
    ("anomalies.md", lambda w: w[0] == "sql" and "duckdb" in w, "tests/interop/test_auditor_queries.py"),
    ("lakehouse.md", lambda w: w[0] in ("sql", "python"), "tests/interop/test_lake.py"),
    ("trail.md", lambda w: w[0] == "sql", "tests/interop/test_trail_sql.py"),
    ("policy.md", lambda w: w[0] == "yaml" and len(w) > 1, "crates/custody/tests/policy_cli.rs"),
    ("policy.md", lambda w: w[0] == "sh", "crates/custody/tests/policy_cli.rs"),
    ("injection.md", lambda w: w == ["yaml"], "tests/interop/test_inject.py"),
    ("sdk.md", lambda w: w[0] in ("python", "typescript"), "tests/interop/test_sdk_recipes.py"),
]


@dataclasses.dataclass
class Block:
    doc: str  # "README.md" or "docs/x.md"
    line: int  # of the opening fence, 1-based
    words: list[str]  # the info string's words
    body: str  # dedented by the fence's indentation
    not_run: str | None  # the reason of a preceding `<!-- not run: ... -->`

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line} ```{' '.join(self.words)}"


def parse(path, text: str | None = None) -> tuple[list[Block], list[str]]:
    """The blocks of one Markdown file (or of `text`, named `path`), and its fence
    problems (an unclosed fence, one without an info string). A closing fence is the
    opening's character, at least as long, and nothing else on the line (CommonMark):
    "``` text" does not close."""
    doc = str(path) if text is not None else path.relative_to(REPO).as_posix()
    lines = (path.read_text() if text is None else text).split("\n")
    blocks, problems = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        closing = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{%d,}[ \t]*$" % len(fence))
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            if re.match(r"^[ \t]*" + re.escape(fence), lines[j]):
                # "``` How it works," or "```yaml": not a closing fence, so the block
                # opened above runs on and swallows the text (use a longer fence to
                # show a fence inside a block).
                problems.append(f"{doc}:{j + 1}: a fence line inside the block opened at line {i + 1}; "
                                "a closing fence has nothing after it")
            j += 1
        if j == len(lines):
            problems.append(f"{doc}:{i + 1}: the fence opened here never closes")
        if not info:
            problems.append(f"{doc}:{i + 1}: a fence without an info string (`text` for output)")
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = NOT_RUN.match(previous)
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip()
                         for line in lines[i + 1:j])
        blocks.append(Block(doc, i + 1, info.split() or [""], body + "\n", mark and mark["reason"]))
        i = j + 1
    return blocks, problems


def every_markdown_file() -> list:
    """Every Markdown file git tracks (the fence check covers them all)."""
    out = subprocess.run(["git", "ls-files", "-z", "*.md"], cwd=REPO, capture_output=True, check=True)
    return [REPO / name for name in out.stdout.decode().split("\0") if name]


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks, problems = [], []
    for path in DOCS:
        b, p = parse(path)
        blocks += b
        problems += p
    return blocks, problems


def is_config(block: Block) -> bool:
    """A YAML block whose top-level keys are all sections of custody's config file."""
    if block.words != ["yaml"]:
        return False
    keys = re.findall(r"^([A-Za-z_][\w-]*):", block.body, re.M)
    return bool(keys) and set(keys) <= CONFIG_SECTIONS


def classify(block: Block) -> str:
    """What runs `block`: "output", "not run", "covered: <test>", "config", "sql",
    "json", "python", "sh", or "" when nothing claims it (the test fails)."""
    kind = block.words[0]
    if kind == "text":
        return "output"
    if block.not_run:
        return "not run"
    name = block.doc.rsplit("/", 1)[-1]
    for doc, claims, test in COVERED:
        if name == doc and claims(block.words):
            return f"covered: {test}"
    if is_config(block):
        return "config"
    if block.words in (["sql"], ["json"], ["python"], ["sh"]):
        return kind
    return ""
