"""The docs against the code: the README's command-line and settings tables, the setting names and
repository paths the docs mention, and their relative links. Reads files only: no server starts."""

from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from assistd.cli import parser
from core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# A dated log: each entry names the files as they were when it was measured.
LOGS = {ROOT / "docs" / "benchmarks.md"}
OURS = (
    "api/",
    "core/",
    "workers/",
    "retrieval/",
    "sandbox/",
    "assistd/",
    "tests/",
    "bench/",
    "deploy/",
    "docs/",
    ".ci/",
)
GENERATED = {"tests/playground/artifacts/"}  # made by a test run, ignored by git


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title, line number) of each heading outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)$", line)):
            out.append((len(match.group(1)), match.group(2).strip(), n))
    return out


def section(text: str, title: str) -> str:
    """The body of the `## title` section, up to the next heading of level 1 or 2."""
    lines = text.splitlines()
    marks = [(level, t, n) for level, t, n in headings(text) if level <= 2]
    for i, (level, t, n) in enumerate(marks):
        if level == 2 and t == title:
            end = marks[i + 1][2] if i + 1 < len(marks) else len(lines)
            return "\n".join(lines[n + 1 : end])
    raise AssertionError(f"no '## {title}' section")


def env_names(field: str) -> list[str]:
    """The environment variables a Settings field is read from."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{Settings.model_config.get('env_prefix', '')}{field}".upper()]


SETTINGS = {name: field for field in Settings.model_fields for name in env_names(field)}


def subcommands(
    of: argparse.ArgumentParser | None = None, words: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Each command by its words: `serve`, and `runs list` where a command has subcommands."""
    actions = [a for a in (of or parser())._actions if isinstance(a, argparse._SubParsersAction)]
    if of is not None and not actions:
        return {words: of}
    assert len(actions) == 1
    out: dict[str, argparse.ArgumentParser] = {}
    for name, cmd in actions[0].choices.items():
        out |= subcommands(cmd, f"{words} {name}".strip())
    return out


def test_command_line_block_lists_every_subcommand_and_its_options() -> None:
    block = re.search(r"```\n(.*?)```", section(README.read_text(), "Command line"), re.S)
    assert block, "the Command line section has no code block"
    commands = subcommands()
    documented = {}
    for line in block.group(1).splitlines():
        words = line.split()
        assert words[:1] == ["assistd"], line
        name = words[1] if words[1] in commands else " ".join(words[1:3])
        documented[name] = dict(re.findall(r"\[(--[\w-]+)(?: ([^\]]+))?\]", line))
    assert list(documented) == list(commands)
    for name, cmd in commands.items():
        # a default shows as itself; an option without one (None, or a flag) shows a placeholder
        options = {
            a.option_strings[-1]: "" if a.default is False else str(a.default)
            for a in cmd._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS
        }
        shown = {k: options[k] if options.get(k) == "None" else v for k, v in documented[name].items()}
        assert shown == options, (
            f"assistd {name}: the README shows {documented[name]}, argparse has {options}"
        )


def test_settings_table_lists_exactly_the_settings() -> None:
    body = section(README.read_text(), "Configuration")
    table = body[body.index("| Variable |") :].split("\n\n")[0].splitlines()[2:]  # past the header rows
    documented = [name for row in table for name in re.findall(r"`([A-Z0-9_]+)`", row.split("|")[1])]
    assert documented
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    missing = sorted(set(SETTINGS) - set(documented))
    unknown = sorted(set(documented) - set(SETTINGS))
    assert not missing, f"settings missing from the README's table: {missing}"
    assert not unknown, f"the README's table lists what no setting reads: {unknown}"


@functools.cache
def machinery_variables() -> frozenset[str]:
    """ASSISTD_* variables read by the test suite and the CI scripts rather than by Settings."""
    found: set[str] = set()
    for path in [
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "tests").rglob("*.mjs"),
        *(ROOT / ".ci").iterdir(),
    ]:
        if path.is_file() and path.name != Path(__file__).name:
            found |= set(re.findall(r"\bASSISTD_[A-Z0-9_]+", path.read_text(errors="replace")))
    return frozenset(found - set(SETTINGS))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_assistd_variable_named_is_real(doc: Path) -> None:
    named = set(re.findall(r"\bASSISTD_[A-Z0-9_]+", doc.read_text()))
    unknown = sorted(named - set(SETTINGS) - machinery_variables())
    assert not unknown, f"{doc.name} names variables that nothing reads: {unknown}"


def paths_in(text: str) -> set[str]:
    """Repository paths in backticks (`workers/prompt.py`, `deploy/k8s/`, the first word of a
    command such as `bench/runs.py --workers 2`)."""
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            word = word.rstrip(".,;:)")
            if word.startswith(OURS) and re.fullmatch(r"[\w./-]+", word):
                found.add(word)
    return found


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if d not in LOGS], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_every_repository_path_named_exists(doc: Path) -> None:
    missing = sorted(p for p in paths_in(doc.read_text()) - GENERATED if not (ROOT / p).exists())
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md":
            if fragment not in {anchor(title) for _, title, _ in headings(linked.read_text())}:
                broken.append(target)
    assert not broken, f"{doc.name} has broken links: {broken}"
