"""Inline an HTML template's CSS once, before Jinja runs, and only where that provably changes nothing.

Why: css-inline on every rendered message costs more than the rest of rendering (FACTS.md: ≈ 3,800/s
against ≈ 12,000/s). Inlining the template source once makes the per-message cost plain Jinja.

How: ``flatten`` resolves ``{% extends %}``/``{% block %}``/``{% include "..." %}`` into one source;
``inline_source`` hides every Jinja tag behind an HTML comment (comments keep their place even between
table rows, where css-inline's HTML5 parser would move bare text out of the table), inlines, and puts the
tags back. Anything the trick cannot preserve raises ``InlineOnceUnsafe`` and the caller falls back to
inlining each rendered message: Jinja inside <style>, inside class/id/style attributes (selectors would
match the tag, not the value) or inside a start tag; {% raw %}, {{ super() }}, imports and dynamic
includes; a tag that moved or vanished. The renderer also compares both strategies on the sample context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import css_inline


class InlineOnceUnsafe(Exception):
    """This template cannot be inlined before rendering; inline each rendered message instead."""


_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_MARK = "kzj"
_PLACEHOLDER = re.compile(rf"(?:<!--|&lt;!--){_MARK}(\d+)x(?:-->|--&gt;)")
_EXTENDS = re.compile(r"""\A(?:\s|\{#.*?#\})*\{%-?\s*extends\s+(["'])([^"']+)\1\s*-?%\}""", re.S)
_INCLUDE = re.compile(r"""\{%-?\s*include\s+(["'])([^"']+)\1\s*-?%\}""")
_BLOCK_TAG = re.compile(r"\{%-?\s*(?:block\s+(\w+)|endblock(?:\s+\w+)?)\s*-?%\}")
_UNSUPPORTED = re.compile(r"\A\{%-?\s*(?:extends|include|import|from|raw)\b|\bsuper\s*\(|\bself\s*\.")


def _check_supported(name: str, source: str) -> None:
    for tag in _JINJA_TAG.finditer(source):
        if not tag.group(0).startswith("{#") and _UNSUPPORTED.search(tag.group(0)):
            raise InlineOnceUnsafe(f"{name}: {tag.group(0)!r} is not something the flattener resolves")


def _blocks(source: str) -> list[tuple[str, int, int, int, int]]:
    """Every block as (name, tag start, inner start, inner end, tag end), outermost first by position."""
    stack: list[tuple[str, int, int]] = []
    found: list[tuple[str, int, int, int, int]] = []
    for match in _BLOCK_TAG.finditer(source):
        if match.group(1):
            stack.append((match.group(1), match.start(), match.end()))
        elif stack:
            name, start, inner_start = stack.pop()
            found.append((name, start, inner_start, match.start(), match.end()))
        else:
            raise InlineOnceUnsafe("an endblock without its block")
    if stack:
        raise InlineOnceUnsafe(f"block {stack[-1][0]!r} is not closed the way this flattener understands")
    return sorted(found, key=lambda block: block[1])


def _top_level_blocks(source: str) -> dict[str, str]:
    """A child template's top-level blocks; anything else outside blocks (a set, text) is unsupported."""
    blocks: dict[str, str] = {}
    rest, end = [], 0
    for name, start, inner_start, inner_end, tag_end in _blocks(source):
        if start < end:
            continue  # nested: travels inside its parent's text
        blocks[name] = source[inner_start:inner_end]
        rest.append(source[end:start])
        end = tag_end
    rest.append(source[end:])
    if re.sub(r"\{#.*?#\}", "", "".join(rest), flags=re.S).strip():
        raise InlineOnceUnsafe("the child template has content outside its blocks")
    return blocks


def flatten(get_source: Callable[[str], str], name: str, _chain: tuple[str, ...] = ()) -> str:
    """One source for ``name`` with its layouts and literal includes resolved, blocks kept in place."""
    if name in _chain:
        raise InlineOnceUnsafe(f"{name} includes or extends itself")
    chain = (*_chain, name)
    source = _INCLUDE.sub(lambda m: flatten(get_source, m.group(2), chain), get_source(name))
    extends = _EXTENDS.match(source)
    if extends is None:
        _check_supported(name, source)
        return source
    child = source[extends.end() :]
    _check_supported(name, child)
    overrides = _top_level_blocks(child)
    flat = flatten(get_source, extends.group(2), chain)
    pending = set(overrides)
    while pending:
        target = next((b for b in _blocks(flat) if b[0] in pending), None)
        if target is None:
            break  # blocks the layout does not have are never rendered by Jinja either
        block_name, _, inner_start, inner_end, _ = target
        flat = flat[:inner_start] + overrides[block_name] + flat[inner_end:]
        pending.discard(block_name)
    return flat


class _StartTagCheck(HTMLParser):
    """Finds Jinja placeholders where inlining before rendering would be wrong."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problem: str | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for attr, value in attrs:
            if _MARK in tag or _MARK in attr:
                self.problem = f"a Jinja tag inside the <{tag}> start tag itself"
            elif value and _MARK in value and attr in ("class", "id", "style"):
                self.problem = f"a Jinja tag inside a {attr}= attribute of <{tag}>"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _MARK in data:
            self.problem = "a Jinja tag inside <style>"


def inline_source(inliner: css_inline.CSSInliner, source: str) -> str:
    """The flattened template source with its CSS inlined and every Jinja tag back where it was."""
    if _MARK in source:
        raise InlineOnceUnsafe(f"the template text contains the placeholder marker {_MARK!r}")
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"<!--{_MARK}{len(tags) - 1}x-->"

    protected = _JINJA_TAG.sub(hide, source)
    check = _StartTagCheck()
    check.feed(protected)
    check.close()
    if check.problem:
        raise InlineOnceUnsafe(check.problem)
    protected = explicit_tbody(protected)
    inlined = inliner.inline(protected)
    order = [int(m.group(1)) for m in _PLACEHOLDER.finditer(inlined)]
    if order != list(range(len(tags))):
        raise InlineOnceUnsafe("css-inline moved or dropped a Jinja tag")
    if _tag_sequence(inlined) != _tag_sequence(protected):
        raise InlineOnceUnsafe("the HTML parser added, moved or dropped elements (close every tag you open)")
    return _PLACEHOLDER.sub(lambda m: tags[int(m.group(1))], inlined)


_TABLE_PART = re.compile(r"<(/?)(table|thead|tbody|tfoot|tr)\b[^>]*>", re.I)


def explicit_tbody(html: str) -> str:
    """Write the <tbody> an HTML parser would imply around a table's bare rows.

    Otherwise the parser opens it right before the first <tr>, i.e. after a ``{% for %}`` placed before
    the rows, and the loop would repeat <tbody>. With it explicit, the loop stays around the rows alone.
    """
    edits: list[tuple[int, str]] = []
    tables: list[dict[str, Any]] = []  # per open table: its open row group (None/explicit/implied), where to imply
    for match in _TABLE_PART.finditer(html):
        closing, tag = match.group(1) == "/", match.group(2).lower()
        if tag == "table" and not closing:
            tables.append({"open": None, "at": match.end()})
            continue
        if not tables:
            continue
        table = tables[-1]
        if tag == "table":
            if table["open"] == "implied":
                edits.append((match.start(), "</tbody>"))
            tables.pop()
        elif tag != "tr" and not closing:
            if table["open"] == "implied":
                edits.append((match.start(), "</tbody>"))
            table["open"] = "explicit"
        elif tag != "tr":
            table["open"], table["at"] = None, match.end()
        elif not closing and table["open"] is None:
            edits.append((table["at"], "<tbody>"))
            table["open"] = "implied"
    for position, text in sorted(edits, key=lambda edit: edit[0], reverse=True):
        html = html[:position] + text + html[position:]
    return html


class _TagSequence(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "style":  # css-inline removes <style> (or keeps one for @media rules)
            self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag != "style":
            self.tags.append(f"/{tag}")


def _tag_sequence(html: str) -> list[str]:
    parser = _TagSequence()
    parser.feed(html)
    parser.close()
    return parser.tags


class _Normaliser(HTMLParser):
    """HTML as a list of tokens, blind to whitespace runs and to how characters are escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[str] = []
        self._text: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.tokens.append(text)
        self._text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._flush()
        self.tokens.append(f"<{tag} {sorted((a, ' '.join((v or '').split())) for a, v in attrs)}>")

    def handle_endtag(self, tag: str) -> None:
        self._flush()
        self.tokens.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def same_html(left: str, right: str) -> bool:
    """Whether two HTML documents are equal apart from whitespace and character escaping."""
    tokens = []
    for document in (left, right):
        parser = _Normaliser()
        parser.feed(document)
        parser.close()
        tokens.append(parser.tokens)
    return tokens[0] == tokens[1]
