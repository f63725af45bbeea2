"""Run every ```python block of the documentation, page by page.

Each page runs in a fresh Python process, in a new temporary working directory, its
blocks in order in one namespace (so a block may use what an earlier block of the same
page defined). A failing block stops its page; the run goes on with the next page and
ends with status 1, naming each failing page, block number and line::

    python docs/run_snippets.py                  # every docs/*.md
    python docs/run_snippets.py docs/layers.md   # some pages

The pages run as a new user's programs would: matplotlib draws off-screen
(``MPLBACKEND=Agg``) and ``JAX_ENABLE_X64`` is unset unless a page sets it. Only
blocks fenced exactly as ```python run; ```text, ```bash and ```console blocks are
for reading.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

DOCS = pathlib.Path(__file__).resolve().parent

#: A fenced block: the opening fence (any indentation, ``` or longer), its info string, the body.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)

#: Seconds a page may take before it counts as failed.
PAGE_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    """One ```python block: its number on the page (from 1), first code line and code."""

    number: int
    line: int
    code: str


class SnippetError(Exception):
    """A block raised; the message names the page, the block and its line."""


def blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, in order."""
    found = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip().split()
        if not info or info[0] != "python":
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Block(len(found) + 1, line, textwrap.dedent(match["body"])))
    return found


def run_page(path: pathlib.Path) -> int:
    """Run a page's blocks in order in one namespace; return how many ran.

    Raises
    ------
    SnippetError
        A block raised: the message names the page, block and line, with the traceback.
    """
    namespace: dict[str, object] = {"__name__": "__main__"}
    page = blocks(path.read_text(encoding="utf-8"))
    for block in page:
        where = f"{path.name}, block {block.number} (line {block.line})"
        try:
            # padded so that tracebacks give the line numbers of the page itself
            code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
            exec(code, namespace)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            raise SnippetError(f"{where} failed:\n{detail}") from exc
    return len(page)


def _child(page: str) -> int:
    """The page's own process: run it in a temporary directory; 0 when every block passed."""
    path = pathlib.Path(page).resolve()
    with tempfile.TemporaryDirectory(prefix="anynet-docs-") as folder:
        os.chdir(folder)
        try:
            count = run_page(path)
        except SnippetError as exc:
            print(exc, file=sys.stderr)
            return 1
    print(f"{count} block(s) passed")
    return 0


def run(
    pages: Sequence[pathlib.Path], *, timeout: float = PAGE_TIMEOUT, verbose: bool = False
) -> list[str]:
    """Run each page in its own process; return one message per failing page (empty: all ran)."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("JAX_ENABLE_X64", None)
    failures = []
    for page in pages:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(pathlib.Path(__file__).resolve()), "--one", str(page)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{page.name}: did not finish within {timeout:g} s")
            print(f"FAIL {page.name}: timed out after {timeout:g} s", flush=True)
            continue
        seconds = time.perf_counter() - start
        if verbose:
            print(done.stdout, done.stderr, sep="", end="", flush=True)
        if done.returncode == 0:
            summary = done.stdout.strip().splitlines()[-1]  # the child's count, after the output
            print(f"ok   {page.name} ({seconds:.1f} s): {summary}", flush=True)
        else:
            message = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
            start_of_report = message.find(f"{page.name}, block ")  # after warnings, if any
            if start_of_report >= 0:
                message = message[start_of_report:]
            failures.append(message if message.startswith(page.name) else f"{page.name}: {message}")
            print(f"FAIL {page.name} ({seconds:.1f} s)", flush=True)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pages named in ``argv`` (default: every ``docs/*.md``); 0 when all pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=pathlib.Path, help="Markdown pages")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the per-page child process
    parser.add_argument("--timeout", type=float, default=PAGE_TIMEOUT, help="seconds per page")
    parser.add_argument("-v", "--verbose", action="store_true", help="show what the pages print")
    args = parser.parse_args(argv)
    if args.one:
        return _child(args.one)
    pages = sorted(args.pages or DOCS.rglob("*.md"))
    counts = {page: len(blocks(page.read_text(encoding="utf-8"))) for page in pages}
    total = sum(counts.values())
    if total == 0:  # a run that checked nothing must not pass
        print(f"no ```python blocks in {len(pages)} page(s)", file=sys.stderr)
        return 1
    start = time.perf_counter()
    chosen = [page for page in pages if counts[page]]
    failures = run(chosen, timeout=args.timeout, verbose=args.verbose)
    seconds = time.perf_counter() - start
    if failures:
        print(f"\n{len(failures)} of {len(pages)} page(s) failed:\n", file=sys.stderr)
        print("\n\n".join(failures), file=sys.stderr)
        return 1
    ran = sum(1 for count in counts.values() if count)
    print(f"all {total} block(s) of {ran} page(s) ran ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
