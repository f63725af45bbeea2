"""Draw the pictures the pages show (``docs/*.png``): run ``plots.md``'s and
``divergence.md``'s blocks in ``docs/``.

``python docs/pictures.py`` after a change to anynet.plot or to those blocks; the PNG
files are committed, so that building the site needs nothing drawn.
"""

from __future__ import annotations

import os
import pathlib

from run_snippets import run_page

DOCS = pathlib.Path(__file__).resolve().parent

if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(DOCS)
    for page in ("plots.md", "divergence.md"):
        run_page(DOCS / page)
    for picture in sorted(DOCS.glob("*.png")):
        print(f"{picture.name}: {picture.stat().st_size / 1000:.0f} kB")
