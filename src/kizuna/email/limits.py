"""Bounds on rendering one email (loop iterations, text sizes, time), so no template can hang lint or a run.

Jinja's sandbox stops a template from reaching Python internals, not from spinning: nested
``range(100000)`` loops or ``'x' * 300000000`` kept lint at 100% CPU. Each message gets a budget:

- loops: every ``{% for %}`` draws from one count per message (the parsed template's loops are wrapped);
- text: ``*``, ``+`` and ``%`` on strings and lists are checked before they run, every filter and call
  result, ``~`` joins and each rendered part after; a width above the limit given to ``center``,
  ``indent``, ``slice``, a string method (``'x'.ljust(…)``) or a format (``%300000000s``) is refused
  before it allocates;
- time: checked at every loop step, call, filter and operator; past the deadline the render stops.

Exceeding any of them raises RenderLimitExceeded, which the renderer reports with the file and line.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.visitor import NodeTransformer

LOOP_FILTER = "_kizuna_loop"  # wraps every {% for %}'s iterable: one budget step per item
TEXT_FILTER = "_kizuna_text"  # wraps every `~` join: its result's size is checked
# Widths and precisions: "%300000000s", "%-10.5f", "%(name)20s" and "{:>300000000}", "{0:.9999999f}".
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d+))?")
_BRACE_SPECS = re.compile(r"\{[^{}]*?:([^{}]*)\}")
# Filters whose number argument is how much they build: center(width), indent(width), slice(slices).
_SIZE_ARGUMENTS = frozenset({"center", "indent", "slice"})
_SIZED = (str, list, tuple, dict, set, frozenset, bytes)


class RenderLimitExceeded(Exception):
    """A render went past one of its bounds; the message says which and which setting raises it."""


@dataclass(frozen=True)
class RenderLimits:
    """Per-message bounds; settings KIZUNA_TEMPLATE_MAX_LOOP_ITERATIONS, _MAX_TEXT_CHARS, _RENDER_SECONDS."""

    max_loop_iterations: int = 100_000
    max_text_chars: int = 1_000_000
    max_seconds: float = 5.0


class _Budget:
    __slots__ = ("deadline", "iterations", "limits")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.iterations = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"rendering took longer than {self.limits.max_seconds:g} s for one message "
                "(KIZUNA_TEMPLATE_RENDER_SECONDS); look for loops or filters that repeat too much"
            )


_state = threading.local()


class MessageBudget:
    """One message's budget for this thread; reused by nested calls unless ``fresh`` (then restored after).

    A class rather than @contextmanager: it is entered for every message, and a generator costs more."""

    __slots__ = ("fresh", "limits", "outer")

    def __init__(self, limits: RenderLimits, *, fresh: bool = False) -> None:
        self.limits = limits
        self.fresh = fresh
        self.outer: _Budget | None = None

    def __enter__(self) -> None:
        self.outer = getattr(_state, "budget", None)
        if self.outer is None or self.fresh:
            _state.budget = _Budget(self.limits)

    def __exit__(self, *exc: object) -> None:
        _state.budget = self.outer


def _current() -> _Budget | None:
    return getattr(_state, "budget", None)


def check_size(value: Any, limits: RenderLimits, what: str = "a value") -> Any:
    """``value``, unless it is a string or collection longer than the limit."""
    if isinstance(value, _SIZED) and len(value) > limits.max_text_chars:
        raise RenderLimitExceeded(_too_long(what, len(value), limits))
    return value


def _too_long(what: str, size: int, limits: RenderLimits) -> str:
    return (
        f"{what} would be {size:,} characters or items, over the limit of {limits.max_text_chars:,} "
        "(KIZUNA_TEMPLATE_MAX_TEXT_CHARS)"
    )


def _check_number(value: Any, limits: RenderLimits, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limits.max_text_chars:
        raise RenderLimitExceeded(
            f"{what} was given {value:,}, over the limit of {limits.max_text_chars:,} "
            "(KIZUNA_TEMPLATE_MAX_TEXT_CHARS): it would build a text that large"
        )


def _check_format(template: Any, limits: RenderLimits, what: str, *, braces: bool = False) -> None:
    """A %-format (or, with ``braces``, a {}-format) string asking for a width or precision over the limit."""
    if not isinstance(template, str):
        return
    if braces:
        numbers = [n for spec in _BRACE_SPECS.findall(template) for n in re.findall(r"\d+", spec)]
    else:
        numbers = [n for pair in _PERCENT_WIDTHS.findall(template) for n in pair if n]
    for number in numbers:
        if len(number) > 7 or int(number) > limits.max_text_chars:
            raise RenderLimitExceeded(
                f"{what} has a width of {number}, over the limit of {limits.max_text_chars:,} "
                "(KIZUNA_TEMPLATE_MAX_TEXT_CHARS)"
            )


def bounded_loop(limits: RenderLimits) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """The LOOP_FILTER: yields the loop's items, counting each against the message's loop budget."""

    def loop(items: Iterable[Any]) -> Iterator[Any]:
        current = _current()
        if current is None:
            yield from items
            return
        most = current.limits.max_loop_iterations
        for item in items:
            current.iterations += 1
            if current.iterations > most:
                raise RenderLimitExceeded(
                    f"loops ran more than {most:,} times for one message (KIZUNA_TEMPLATE_MAX_LOOP_ITERATIONS)"
                )
            current.tick()
            yield item

    return loop


def bounded_filter(name: str, func: Callable[..., Any], limits: RenderLimits) -> Callable[..., Any]:
    """A filter checked for time, numbers above the limit (besides the value filtered) and its result's size.

    Called for every filter in every message, so the common case (no extra arguments) does the least."""
    what = f"the filter {name}"
    # The value filtered is the first argument after any context/environment Jinja passes.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is None else 2
    most = limits.max_text_chars
    clock = time.monotonic

    @functools.wraps(func)  # keeps Jinja's pass_context/pass_environment marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        current = getattr(_state, "budget", None)
        if current is not None and clock() > current.deadline:
            current.tick()
        if len(args) > skip or kwargs:
            _check_filter_arguments(name, what, args, skip, kwargs, limits)
        result = func(*args, **kwargs)
        if isinstance(result, _SIZED) and len(result) > most:
            raise RenderLimitExceeded(_too_long(what, len(result), limits))
        return result

    return bounded


def _check_filter_arguments(
    name: str, what: str, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any], limits: RenderLimits
) -> None:
    given = args[skip:]
    if name in _SIZE_ARGUMENTS:
        for arg in (*given, *kwargs.values()):
            _check_number(arg, limits, what)
    if name == "format":
        _check_format(args[skip - 1], limits, what)
    elif name == "replace" and len(given) >= 2:  # 'x' * 999999 | replace('', …) multiplies, too
        source, old, new = args[skip - 1], given[0], given[1]
        if isinstance(source, str) and isinstance(new, str) and isinstance(old, str):
            size = len(source) + (len(source) + 1 if old == "" else source.count(old)) * len(new)
            if size > limits.max_text_chars:
                raise RenderLimitExceeded(_too_long(what, size, limits))


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits) -> None:
    """Before a call from a template: time, and string methods asked for more than the limit."""
    current = _current()
    if current is not None:
        current.tick()
    receiver = getattr(obj, "__self__", None)
    wrapped = getattr(getattr(obj, "__wrapped__", None), "__self__", None)  # the sandbox's str.format wrapper
    for text in (receiver, wrapped):
        if isinstance(text, str):
            method = getattr(obj, "__name__", "call")
            what = f"the string method {method}"
            for arg in (*args, *kwargs.values()):
                _check_number(arg, limits, what)
            if method in ("format", "format_map"):
                _check_format(text, limits, what, braces=True)


def check_binop(operator: str, left: Any, right: Any, limits: RenderLimits) -> None:
    """Before ``left <operator> right``: a result that would be too long, or a power too large to compute."""
    current = _current()
    if current is not None:
        current.tick()
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(seq, Sized) and not isinstance(seq, dict) and isinstance(times, int)
            if sized and len(seq) * times > limits.max_text_chars:
                raise RenderLimitExceeded(_too_long(f"'… * {times:,}'", len(seq) * times, limits))
    elif operator == "+" and isinstance(left, Sized) and isinstance(right, Sized):
        if len(left) + len(right) > limits.max_text_chars:
            raise RenderLimitExceeded(_too_long("'… + …'", len(left) + len(right), limits))
    elif operator == "%":
        _check_format(left, limits, "a %-format")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 < right:
        # The result's size in bits: 2 ** 65536 already has 19,729 digits.
        bits = abs(left).bit_length() * right
        if bits > 64 * 1024:
            raise RenderLimitExceeded(f"{left} ** {right} is too large a number to compute in an email")


class BoundLoops(NodeTransformer):
    """Rewrites a parsed template: every {% for %} iterates through LOOP_FILTER, every `~` join through
    TEXT_FILTER. Done on the syntax tree, so marketers write plain Jinja and cannot leave it out."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # in place: the loops and joins inside are rewritten first
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, TEXT_FILTER, [], [], None, None, lineno=node.lineno)
