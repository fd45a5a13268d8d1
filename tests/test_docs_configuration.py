"""docs/configuration.md documents every flag of the exporter and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter.cli import build_parser
from exporter.demo import build_parser as build_demo_parser

DOC = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings if o.startswith("--")} - {"--help"}


@pytest.mark.parametrize("flag", sorted(flags(build_parser()) | flags(build_demo_parser())))
def test_flag_documented(flag: str) -> None:
    assert f"`{flag}`" in DOC
