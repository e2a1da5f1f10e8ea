"""What every stage shares: params.yaml validated first, and errors that explain themselves
(bad params, bad data, a refused output, a diverged run) shown as one line, not a traceback."""
from __future__ import annotations

import functools
import os
import sys

import click

from pipeline_lib.config import Params, load_params
from pipeline_lib.errors import ClearError

# FileNotFoundError: the messages of missing data, shards and checkpoints say what to run
USER_ERRORS = (ClearError, FileNotFoundError)


def one_line_errors(command):
    """Wrap a stage's command so that a user error ends it with its message alone (exit code 1)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None
    return wrapper


def params_or_exit(path: str = "params.yaml") -> Params:
    try:
        return load_params(path)
    except ClearError as err:
        raise click.ClickException(str(err)) from None


def show_progress() -> bool:
    """Progress bars only for a person at a terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
