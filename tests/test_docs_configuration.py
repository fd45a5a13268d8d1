"""docs/configuration.md documents every command and every flag of the exporter and its commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter.flags import build_parser

DOC = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {"": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings if o.startswith("--")} - {"--help"}


PARSERS = commands(build_parser())


def test_every_command_has_a_parser() -> None:
    assert set(PARSERS) == {"", "demo", "devices"}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_command_documented(command: str) -> None:
    assert f"`{' '.join(filter(None, ('mindx-fault-exporter', command, '[flags]')))}`" in DOC


@pytest.mark.parametrize("flag", sorted(set().union(*(flags(p) for p in PARSERS.values()))))
def test_flag_documented(flag: str) -> None:
    assert f"`{flag}`" in DOC
