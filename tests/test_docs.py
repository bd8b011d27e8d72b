"""Docs that must stay true: the README's two commands, and docs/sources.md against the contract."""

from __future__ import annotations

import re

from kizuna.settings import PROJECT_DIR
from kizuna.sources.contract import TABLES


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
