"""Do a template's HTML and text versions say the same thing? Their links and sentences, compared for lint.

The rule (docs/templates.md, "HTML and text say the same"), applied to the ``content`` blocks of one locale
rendered with the sample_context (the layout and footer are shared, so never differ):

- links: every link of the HTML (``href``: a URL, a ``mailto:`` address, a ``tel:`` number) appears in the
  text version, and every URL written in the text version is a link of the HTML;
- sentences: both are cut into sentences (at 。！？!? and at a full stop before a space), list items and
  paragraphs (HTML blocks; blank-line paragraphs and ``-``/``・``/``■`` lines of the text). Sentences are
  compared without spaces, punctuation, URLs or markup. One that is in one version only, while the other
  has one at least 75% alike that is missing from the first, is a changed sentence; one with no such
  counterpart is a sentence only one version has.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from html.parser import HTMLParser

_BLOCKS = frozenset(
    {"p", "div", "li", "tr", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section"}
)
_HIDDEN = frozenset({"style", "script", "head", "title"})
_URL = re.compile(r"https?://[^\s<>\"'()（）「」、。]+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=[.])(?=\s)")
_LIST_MARK = re.compile(r"^\s*(?:[-*•・■□◆●]|\d+[.)])\s*")
_MIN_CHARS = 8  # shorter pieces (a label, a name) carry no sentence worth comparing
SIMILAR = 0.75


class _Visible(HTMLParser):
    """The visible text of an HTML fragment, one block (paragraph, list item, table row) per line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in ("br", "td", "th"):
            self.parts.append(" ")
        if tag == "a":
            self.hrefs += [value.strip() for name, value in attrs if name == "href" and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data.replace("\n", " "))


def _html_blocks(html: str) -> tuple[list[str], list[str]]:
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return [line for line in "".join(parser.parts).split("\n") if line.strip()], parser.hrefs


def _text_blocks(text: str) -> list[str]:
    """Paragraphs (blank-line separated, lines joined), with each list line a block of its own."""
    blocks: list[str] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip() and not _LIST_MARK.match(line):
            current.append(line.strip())
            continue
        if current:
            blocks.append(" ".join(current))
        current = []
        if line.strip():  # a list line is a block by itself, like an <li>
            blocks.append(line.strip())
    return blocks


def _normal(sentence: str) -> str:
    """What two versions of a sentence must share: no URLs, spaces, punctuation or symbols; NFKC widths."""
    text = unicodedata.normalize("NFKC", _URL.sub("", sentence))
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _sentences(blocks: list[str]) -> dict[str, str]:
    """Normalised sentence → the sentence as written (the first, when one repeats)."""
    found: dict[str, str] = {}
    for block in blocks:
        for piece in _SENTENCE_END.split(_LIST_MARK.sub("", block)):
            shown = " ".join(piece.split())
            key = _normal(shown)
            if len(key) >= _MIN_CHARS:
                found.setdefault(key, shown)
    return found


def _target(href: str) -> str | None:
    """What the text version must show for a link: the URL, the address of a mailto:, the number of a tel:."""
    for scheme in ("mailto:", "tel:"):
        if href.lower().startswith(scheme):
            return href[len(scheme) :].split("?")[0]
    return href if href.lower().startswith(("http://", "https://")) else None


def _short(sentence: str, width: int = 60) -> str:
    return sentence if len(sentence) <= width else sentence[: width - 1] + "…"


def _around_difference(a: str, b: str, width: int = 60) -> tuple[str, str]:
    """Two long sentences cut to where they first differ, so the warning shows the change itself."""
    if len(a) <= width and len(b) <= width:
        return a, b
    changes = [op for op in SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    at_a, at_b = (changes[0][1], changes[0][3]) if changes else (0, 0)
    return _window(a, at_a, width), _window(b, at_b, width)


def _window(text: str, at: int, width: int) -> str:
    start = max(0, min(at - width // 3, len(text) - width))
    end = start + width
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def compare(html: str, text: str) -> list[str]:
    """How the HTML and text versions of one content block differ, one plain sentence each ([] when alike)."""
    html_blocks, hrefs = _html_blocks(html)
    differences: list[str] = []
    targets = [t for t in (_target(h) for h in hrefs) if t]
    for target in dict.fromkeys(targets):
        if target not in text:
            differences.append(f"the HTML links to {target}, which the text version does not show")
    visible_html = "\n".join(html_blocks)
    for url in dict.fromkeys(_URL.findall(text)):
        if url.rstrip(".,:;") not in targets and url.rstrip(".,:;") not in visible_html:
            differences.append(f"the text version shows {url.rstrip('.,:;')}, which the HTML does not link to")

    in_html, in_text = _sentences(html_blocks), _sentences(_text_blocks(text))
    only_html = [k for k in in_html if k not in in_text]
    only_text = [k for k in in_text if k not in in_html]
    for key in only_html:
        best = max(only_text, key=lambda other: SequenceMatcher(None, key, other).ratio(), default=None)
        if best is not None and SequenceMatcher(None, key, best).ratio() >= SIMILAR:
            only_text.remove(best)
            says, text_says = _around_difference(in_html[key], in_text[best])
            differences.append(f"a sentence differs: the HTML says “{says}”, the text version “{text_says}”")
        else:
            differences.append(f"only the HTML says “{_short(in_html[key])}”")
    differences += [f"only the text version says “{_short(in_text[key])}”" for key in only_text]
    return differences
