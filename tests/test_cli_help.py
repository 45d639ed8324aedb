"""The command line explains itself: every argument of every command has help text, and the top-level help lists
every command."""

from __future__ import annotations

import argparse

from onnx_search.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("onnx-search",)):
    """(command path, action) for every action of the parser and of every subparser below it, except -h."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse._SubParsersAction]:
    return {name: a for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}


def missing_help(parser: argparse.ArgumentParser) -> list[str]:
    """Every argument (and every subcommand) whose help is missing or blank, named as on the command line."""
    out = []
    for path, action in _walk(parser):
        if isinstance(action, argparse._SubParsersAction):
            listed = {c.dest for c in action._choices_actions}  # subcommands added with help=...
            out += [f"{' '.join(path)} {name}" for name in action.choices if name not in listed]
            out += [f"{' '.join(path)} {c.dest}" for c in action._choices_actions if not (c.help or "").strip()]
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            out.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    return out


def test_every_argument_has_help():
    parser = build_parser()
    assert len(list(_walk(parser))) > 100  # the walk reaches into the subcommands (and judgments export/import)
    assert missing_help(parser) == []


def test_the_walk_finds_a_missing_help():
    """The check has teeth: an argument without help, or a subcommand without help, is named."""
    parser = build_parser()
    sub = _subcommands(parser)["search"]
    search = sub.choices["search"]
    search.add_argument("--no-help-here", action="store_true")
    search.add_argument("--blank-help", help="  ")
    sub.add_parser("silent")
    assert missing_help(parser) == [
        "onnx-search silent",
        "onnx-search search --no-help-here",
        "onnx-search search --blank-help",
    ]


def test_top_level_help_lists_every_command():
    parser = build_parser()
    text = parser.format_help()
    lines = [line.split() for line in text.splitlines()]
    listed = {words[0] for words in lines if len(words) > 1}  # "  report   (re)build the ..." lines
    commands = set(_subcommands(parser))
    assert {"init", "run", "report", "judgments", "serve", "demo", "convert"} <= commands
    assert commands <= listed, f"not in onnx-search --help: {sorted(commands - listed)}"
    judgments = _subcommands(parser)["judgments"].choices["judgments"]
    listed = {words[0] for words in (line.split() for line in judgments.format_help().splitlines()) if len(words) > 1}
    assert {"export", "import"} <= listed
