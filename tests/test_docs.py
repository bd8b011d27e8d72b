"""Docs that must stay true: the README's two commands, and docs/sources.md against the contract."""

from __future__ import annotations

import re
from typing import Any

from kizuna.core.contract import TABLES
from kizuna.core.settings import PROJECT_DIR


def test_readme_starts_with_exactly_two_make_commands_that_exist() -> None:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first_block and readme.index("```bash") < readme.index("## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (PROJECT_DIR / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "make test" in (PROJECT_DIR / ".ci" / "run").read_text(encoding="utf-8")


def test_sources_doc_lists_every_contract_column() -> None:
    doc = (PROJECT_DIR / "docs" / "sources.md").read_text(encoding="utf-8")
    for table in TABLES:
        section = doc.split(f"### {table.name}")[1].split("###")[0]
        for column in table.columns:
            blank = "required" if column.required else column.blank  # what a blank means, as the contract says
            marker = f"| {column.name}{'*' if column.required else ''} | {column.type.name.lower()} | {blank}"
            assert marker in section, f"docs/sources.md lacks {table.name}.{column.name} as {marker!r}"


DOC_FILES = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)  # fences inside list items too
_SPAN = re.compile(r"`([^`\n]+)`")
_COMMAND = re.compile(r"(?:^|(?<=[\s(\"'/$]))kizuna((?:[ \t]+[^\s#)\"'&;`]+)*)")


def _documented_commands() -> list[tuple[str, str]]:
    """(where, command line) for every `kizuna …` in code blocks and code spans of README.md and docs/."""
    found: list[tuple[str, str]] = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        blocks = [m.group(1) for m in _FENCE.finditer(text)]
        prose = _FENCE.sub("", text)
        lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
        lines += [m.group(1) for m in _SPAN.finditer(prose)]
        for line in lines:
            for match in _COMMAND.finditer(line):
                found.append((path.name, "kizuna" + match.group(1)))
    return found


def _check_command(line: str) -> list[str]:
    """Problems of one documented command line: unknown commands or options. `A | B` lists alternatives."""
    import typer.main

    from kizuna.cli import app

    def subcommands(command: Any) -> dict[str, Any]:
        return getattr(command, "commands", None) or {}  # typer vendors click: a group is what has commands

    root = typer.main.get_command(app)
    problems: list[str] = []
    parent: Any = root
    for number, alternative in enumerate(line.removeprefix("kizuna").split(" | ")):
        words = alternative.split()
        command: Any = root if number == 0 else parent
        if number and words and words[0] not in subcommands(parent):
            if words[0] not in subcommands(root):
                break  # a shell pipe into another program, not an alternative
            command = root
        owner = command
        rest = list(words)
        while rest and rest[0] in subcommands(command):
            owner, command = command, subcommands(command)[rest.pop(0)]
        parent = owner
        if subcommands(command):
            if rest and not rest[0].startswith(("-", "[")) and not rest[0].isupper():
                problems.append(f"{line!r}: no command {rest[0]!r} under {command.name or 'kizuna'!r}")
            continue
        options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        for word in rest:
            option = word.strip("[]").split("=")[0]
            if option.startswith("--") and option not in options:
                problems.append(f"{line!r}: {command.name} has no option {option}")
    return problems


def test_every_documented_kizuna_command_exists_with_its_options() -> None:
    """Each `kizuna …` line in README.md and docs/ names real commands and options (checked on the Typer app,
    without running anything), and each command it names answers --help."""
    from typer.testing import CliRunner

    from kizuna.cli import app

    commands = _documented_commands()
    assert len(commands) > 50, "the extraction found the documented commands"
    problems = [f"{where}: {p}" for where, line in commands for p in _check_command(line)]
    assert problems == []
    paths = {
        tuple(w for w in line.split()[1:3] if w.islower() and w.replace("-", "").isalpha()) for _, line in commands
    }
    for path in sorted(paths):
        result = CliRunner().invoke(app, [*path, "--help"])
        if result.exit_code != 0:  # the second word was an argument (e.g. `campaigns preview NAME`)
            result = CliRunner().invoke(app, [*path[:1], "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_docs_do_not_call_shipped_behaviour_unfinished() -> None:
    """docs/tracking.md once said suppressions were "being wired in" long after selection honoured them."""
    stale = re.compile(r"being wired|to be wired|will be wired|\bTODO\b|\bTBD\b|coming soon", re.I)
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for path in DOC_FILES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if stale.search(line)
    ]
    assert hits == []
