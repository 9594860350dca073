"""The `rnnkit` command line.

Subcommands are contributed by plugins listed under the `rnnkit.commands`
entry-point group (see pyproject.toml). Each plugin is a function
`register(cli: CommandLine)` that adds its parsers; it must import nothing
heavy at module level, so that `rnnkit --help` stays fast and the core never
imports an app or exporter by name.

Two kinds of command exist:
  * top-level commands: `rnnkit info`, `rnnkit export ...`, `rnnkit listen ...`
  * per-application verbs: `rnnkit train sentiment ...`, `rnnkit evaluate music ...`

Handlers receive the parsed `argparse.Namespace` and return an exit status.
A `UsageError` becomes one line on stderr and exit status 2; any other
`RnnkitError` becomes one line and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable

from rnnkit.errors import RnnkitError, UsageError

logger = logging.getLogger(__name__)

# Verbs whose second word names an application, e.g. `rnnkit train sentiment`.
APP_VERBS = {
    "train": "Train a model for an application.",
    "evaluate": "Measure a trained model on a dataset.",
    "predict": "Run a trained model on inputs given on the command line or stdin.",
    "generate": "Generate new sequences with a trained model.",
}


class CommandLine:
    """The parser tree that plugins add their commands to."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(
            prog="rnnkit",
            description="Recurrent networks on Keras 3, exported to builtin-only "
            "TFLite/LiteRT for phones and microcontrollers.",
        )
        self.parser.add_argument(
            "-v", "--verbose", action="count", default=0, help="more log output"
        )
        self._commands = self.parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True
        )
        self._verb_parsers: dict[str, argparse._SubParsersAction] = {}

    def command(
        self, name: str, help: str, handler: Callable
    ) -> argparse.ArgumentParser:
        """Adds `rnnkit NAME` and returns its parser for the caller's arguments."""
        parser = self._commands.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler)
        return parser

    def app_command(
        self, verb: str, app: str, help: str, handler: Callable
    ) -> argparse.ArgumentParser:
        """Adds `rnnkit VERB APP` (e.g. `rnnkit train music`) and returns its parser."""
        if verb not in APP_VERBS:
            raise ValueError(
                f"Unknown verb {verb!r}. Expected one of {sorted(APP_VERBS)}."
            )
        if verb not in self._verb_parsers:
            verb_parser = self._commands.add_parser(
                verb, help=APP_VERBS[verb], description=APP_VERBS[verb]
            )
            self._verb_parsers[verb] = verb_parser.add_subparsers(
                dest="app", metavar="APP", required=True
            )
        parser = self._verb_parsers[verb].add_parser(app, help=help, description=help)
        parser.set_defaults(handler=handler)
        return parser


def _load_plugins(cli: CommandLine) -> None:
    for entry_point in sorted(
        importlib.metadata.entry_points(group="rnnkit.commands"), key=lambda e: e.name
    ):
        try:
            register = entry_point.load()
        except ImportError as error:
            # A plugin whose optional dependencies are missing must not break the rest.
            logger.debug("Skipping command plugin %s: %s", entry_point.name, error)
            continue
        register(cli)


def build_parser() -> argparse.ArgumentParser:
    cli = CommandLine()
    _load_plugins(cli)
    return cli.parser


def print_json_line(payload: dict) -> None:
    """Prints `payload` as one JSON object on one line (the `--json` contract)."""
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter hides the command's own output; a user who
    # wants it back sets the variable explicitly.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO,
        format="%(message)s"
        if args.verbose == 0
        else "%(levelname)s %(name)s: %(message)s",
    )
    try:
        status = args.handler(args)
    except UsageError as error:
        sys.stderr.write(f"rnnkit {args.command}: error: {error}\n")
        return 2
    except RnnkitError as error:
        sys.stderr.write(f"rnnkit {args.command}: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("rnnkit: interrupted\n")
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
