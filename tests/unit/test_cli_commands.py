"""The command line's one convention: every module of `wecom_stream.commands` is a subcommand
named like the module, with `HELP`, `add_arguments` and `run`, and `wecom-stream --help`
lists each of them with its help line."""

from __future__ import annotations

import argparse
import inspect
import pkgutil
from types import ModuleType

import pytest

import wecom_stream.commands
from wecom_stream.cli import build_parser, main
from wecom_stream.commands import COMMANDS


def command_modules() -> dict[str, ModuleType]:
    """The public modules of the package, by their last name."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(wecom_stream.commands.__path__):
        if not info.name.startswith("_"):
            found[info.name] = getattr(wecom_stream.commands, info.name)
    return found


def test_every_module_is_a_listed_command_of_its_own_name() -> None:
    modules = command_modules()
    assert sorted(modules) == sorted(COMMANDS)
    for name, module in modules.items():
        assert COMMANDS[name] is module


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_the_three_names(name: str) -> None:
    module = command_modules()[name]
    assert isinstance(module.HELP, str)
    assert module.HELP.strip()
    assert len(inspect.signature(module.add_arguments).parameters) == 1  # the subparser
    assert len(inspect.signature(module.run).parameters) == 2  # args, common settings
    assert {"HELP", "add_arguments", "run"} <= set(module.__all__)


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap at the terminal width
    assert "{" + ",".join(COMMANDS) + "}" in out
    for name, module in COMMANDS.items():
        assert f"{name} {' '.join(module.HELP.split())}" in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_has_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: wecom-stream {name}")


def test_the_parser_dispatches_on_the_subcommand_name() -> None:
    args = build_parser().parse_args(["topics", "create"])
    assert isinstance(args, argparse.Namespace)
    assert (args.command, args.action) == ("topics", "create")
