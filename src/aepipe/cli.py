"""The `aepipe` command: `aepipe score` and `aepipe calibrate` (aepipe.deploy.cli), `aepipe grid`
(aepipe.grid.cli)."""

import argparse

from aepipe.deploy import cli as deploy_cli
from aepipe.entrypoint import exit_on_error
from aepipe.grid import cli as grid_cli


def main(argv: list[str] | None = None) -> None:
    exit_on_error(lambda: run(argv))


def run(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog="aepipe", description="Anomaly scores from a trained aepipe autoencoder."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    deploy_cli.add_commands(commands)
    grid_cli.add_command(commands)
    args = parser.parse_args(argv)
    args.run(args)
