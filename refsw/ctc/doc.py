"""A report as a list of blocks, written as Markdown and as a self-contained HTML page.

The CTC report (refsw.ctc.report) is built once as blocks (headings,
paragraphs, preformatted text, tables, lists, images) and written twice:
``report-*.md`` and ``report-*.html``.  The HTML page is built with lxml; it
loads nothing (its Content-Security-Policy allows only inline styles and
``data:`` images): tables are ``<table>``, the RD plots ``<img>`` elements
with the PNG inline (``data:image/png;base64,...``).

Inline markup in text: ``code`` in backticks and **bold** (as in Markdown).
"""
from __future__ import annotations

import base64
import os
import re

_INLINE = re.compile(r"(`[^`]*`|\*\*[^*]+\*\*)")

STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1.5em; color: #111; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: right; white-space: nowrap; }
th { background: #eee; }
td:first-child, td.text, th.text { text-align: left; }
tbody tr:nth-child(even) { background: #f7f7f7; }
pre { background: #f4f4f4; padding: 0.6em; white-space: pre-wrap; }
code { background: #f0f0f0; padding: 0 2px; }
figure { display: inline-block; margin: 0.4em; }
figcaption { font-size: 0.9em; text-align: center; }
"""

#: the page may load nothing: styles are inline, images data: URIs
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Doc:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def para(self, text: str):
        self.blocks.append(("p", text))

    def pre(self, lines: list[str]):
        self.blocks.append(("pre", list(lines)))

    def table(self, head: list[str], rows: list[list]):
        self.blocks.append(("table", [str(h) for h in head], [[str(c) for c in r] for r in rows]))

    def bullets(self, items: list):
        """Items: text, or (text, [sub-item texts])."""
        self.blocks.append(("ul", [(i, []) if isinstance(i, str) else (i[0], list(i[1])) for i in items]))

    def images(self, images: list[tuple[str, str]]):
        """(caption, PNG path) of each image."""
        self.blocks.append(("img", list(images)))

    # ------------------------------------------------------------------ Markdown

    def markdown(self, base_dir: str) -> str:
        """The Markdown text; image paths relative to ``base_dir``."""
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(b[1])
            elif kind == "pre":
                out.append("\n".join(["```"] + b[1] + ["```"]))
            elif kind == "table":
                lines = ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                lines += ["| " + " | ".join(r) + " |" for r in b[2]]
                out.append("\n".join(lines))
            elif kind == "ul":
                lines = []
                for text, sub in b[1]:
                    lines.append(f"- {text}")
                    lines += [f"  - {s}" for s in sub]
                out.append("\n".join(lines))
            elif kind == "img":
                out.append("\n".join(f"![{alt}]({os.path.relpath(p, base_dir)})" for alt, p in b[1]))
        return "\n\n".join(out) + "\n"

    # ------------------------------------------------------------------ HTML

    def html(self) -> str:
        """The self-contained HTML page (lxml), images inline as data: URIs."""
        from lxml import html as lhtml
        from lxml.html import builder as E

        def inline(text: str) -> list:
            parts = []
            for piece in _INLINE.split(text):
                if piece.startswith("`") and piece.endswith("`") and len(piece) >= 2:
                    parts.append(E.CODE(piece[1:-1]))
                elif piece.startswith("**") and piece.endswith("**") and len(piece) >= 4:
                    parts.append(E.STRONG(piece[2:-2]))
                elif piece:
                    parts.append(piece)
            return parts

        def cell(tag, text):
            el = tag(*inline(text))
            if text and not _numeric(text):
                el.set("class", "text")
            return el

        body = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                body.append(getattr(E, f"H{min(b[1], 6)}")(*inline(b[2])))
            elif kind == "p":
                body.append(E.P(*inline(b[1])))
            elif kind == "pre":
                body.append(E.PRE("\n".join(b[1])))
            elif kind == "table":
                body.append(E.TABLE(E.THEAD(E.TR(*[cell(E.TH, h) for h in b[1]])),
                                    E.TBODY(*[E.TR(*[cell(E.TD, c) for c in r]) for r in b[2]])))
            elif kind == "ul":
                body.append(E.UL(*[E.LI(*inline(text), *([E.UL(*[E.LI(*inline(s)) for s in sub])] if sub else []))
                                   for text, sub in b[1]]))
            elif kind == "img":
                figs = []
                for alt, p in b[1]:
                    with open(p, "rb") as f:
                        data = base64.b64encode(f.read()).decode("ascii")
                    figs.append(E.FIGURE(E.IMG(src=f"data:image/png;base64,{data}", alt=alt),
                                         E.FIGCAPTION(alt)))
                body.append(E.DIV(*figs, **{"class": "plots"}))
        page = E.HTML(E.HEAD(E.META(charset="utf-8"),
                             E.META(**{"http-equiv": "Content-Security-Policy", "content": CSP}),
                             E.TITLE(self.title), E.STYLE(STYLE)),
                      E.BODY(*body), lang="en")
        return lhtml.tostring(page, doctype="<!DOCTYPE html>", encoding="unicode", pretty_print=True)


def _numeric(text: str) -> bool:
    """A number, a percentage or a range (right-aligned in HTML tables)."""
    return re.fullmatch(r"[-+]?[\d.]+(%| \(nm\))?(\.\.[-+]?[\d.]+)?|n/a|-|inf", text.strip()) is not None
