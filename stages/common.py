"""What every stage shares: errors that explain themselves (bad params, bad data, a refused
output, a diverged run, a full disk) shown as one line, not a traceback, and the per-setup
stages' `--params` option."""
from __future__ import annotations

import functools
import gc
import os
import sys
from pathlib import Path

import click

from pipeline_lib.config.schema import read_stage_params
from pipeline_lib.errors import ClearError

# FileNotFoundError: the messages of missing data, shards and checkpoints say what to run
USER_ERRORS = (ClearError, FileNotFoundError)


def run_command(command: click.Command) -> None:
    """A stage's `__main__`: the command between two `gc.freeze()`, whatever its exit.

    The interpreter's last garbage collection at exit walks every object still alive, the modules
    of torch and torch._dynamo included: 1.9 to 2.3 s after a run's stage, 0.36 s with the heap
    frozen (measured on 2 cores), paid by each of `make repro`'s 25 stage processes. Frozen once
    the stage's imports are done, the collections during the run skip the modules too (1.25 s of
    collections in an SGDrop run, 0.94 s frozen). The process still ends as usual (atexit handlers,
    exit code); every output is written and closed by then."""
    gc.freeze()
    try:
        command()
    finally:
        gc.freeze()


def one_line_errors(command):
    """Wrap a stage's command so that a user error ends it with its message alone (exit code 1)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None
    return wrapper


def stage_params_option(files: str):
    """`--params`: the sections a per-setup stage reads (configs/<setup>/`files`), parsed."""
    return click.option("--params", "params", type=click.Path(exists=True, path_type=Path), required=True,
                        callback=lambda ctx, opt, path: read_stage_params(path),
                        help=f"configs/<setup>/{files}, written by stages.configure")


def show_progress() -> bool:
    """Progress bars only for a person at a terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
