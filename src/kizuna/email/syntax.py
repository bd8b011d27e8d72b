"""Jinja syntax errors in plain words: an unclosed tag is reported where it was opened, not where Jinja gave up."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

# Tags that open a block closed by end<tag>; `set` only in its block form ({% set x %}…{% endset %}).
_OPENERS = frozenset({"if", "for", "block", "macro", "call", "filter", "with", "autoescape", "trans", "set"})
_INNERMOST = re.compile(r"The innermost block that needs to be closed is '(\w+)'")


@dataclass(frozen=True)
class Unclosed:
    """A tag opened on ``line`` and never closed; Jinja noticed at ``found`` (a tag name) on ``found_line``."""

    tag: str
    line: int
    found: str | None  # the end tag that came instead (e.g. 'endblock'); None at the end of the file
    found_line: int | None

    def explain(self, japanese: bool) -> str:
        """What to do, in Japanese for a Japanese template, else in English."""
        opening, closing = f"{{% {self.tag} %}}", f"{{% end{self.tag} %}}"
        if japanese:
            where = f"{self.found_line}行目の {{% {self.found} %}} より前" if self.found else "ファイルの最後まで"
            return f"{self.line}行目の {opening} が閉じられていません。{where}に {closing} を入れてください"
        where = f"before the {{% {self.found} %}} on line {self.found_line}" if self.found else "before the end"
        return f"the {opening} on line {self.line} is never closed: add {closing} {where}"


def find_unclosed(env: jinja2.Environment, source: str, error: jinja2.TemplateSyntaxError) -> Unclosed | None:
    """The tag Jinja says is left open (its 'innermost block'), found by walking the template's tags."""
    wanted = _INNERMOST.search(error.message or "")
    if wanted is None:
        return None
    try:
        tokens = [(line, kind, value) for line, kind, value in env.lex(source) if kind != "whitespace"]
    except jinja2.TemplateSyntaxError:
        return None
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(tokens):
        line, kind, _ = tokens[i]
        if kind != "block_begin" or i + 1 >= len(tokens) or tokens[i + 1][1] != "name":
            i += 1
            continue
        name = tokens[i + 1][2]
        end = i + 1
        assigns = False
        while end < len(tokens) and tokens[end][1] != "block_end":
            assigns = assigns or (tokens[end][1] == "operator" and tokens[end][2] == "=")
            end += 1
        if name in _OPENERS and not (name == "set" and assigns):
            stack.append((name, line))
        elif name.startswith("end"):
            if stack and stack[-1][0] == name[3:]:
                stack.pop()
            else:  # a closing tag for something further out: the innermost open tag is the culprit
                return _innermost(stack, wanted.group(1), name, line)
        i = end + 1
    return _innermost(stack, wanted.group(1), None, None)


def _innermost(stack: list[tuple[str, int]], tag: str, found: str | None, found_line: int | None) -> Unclosed | None:
    for name, line in reversed(stack):
        if name == tag:
            return Unclosed(tag, line, found, found_line)
    return None
