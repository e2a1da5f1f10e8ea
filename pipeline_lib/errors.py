"""Errors whose message alone says what is wrong and what to do; stages print them as one line."""


class ClearError(Exception):
    """Bad params, bad data or a refused output: never a bug (a bug keeps its traceback)."""
