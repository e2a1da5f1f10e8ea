"""What every stage does first: validate params.yaml, turning schema errors into one clear line."""
from __future__ import annotations

import os
import sys

import click

from pipeline_lib.config import Params, ParamsError, load_params


def params_or_exit(path: str = "params.yaml") -> Params:
    try:
        return load_params(path)
    except ParamsError as err:
        raise click.ClickException(str(err)) from None


def show_progress() -> bool:
    """Progress bars only for a person at a terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
