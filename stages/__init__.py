"""One thin click command per pipeline stage: parse, call the library, write outputs.

Every stage's entry first checks, before any heavy import, that this Python has the project's
dependencies: `dvc repro` run outside the virtualenv would otherwise end in a traceback about
`torch`."""
import importlib.util
import sys

_NEEDED = ("torch", "torchvision", "dvclive", "webdataset", "pydantic", "click", "zennit", "captum")
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    sys.exit(f"{sys.executable} lacks {', '.join(_missing)}, which the stages need: run `make repro` (it sets "
             "up .venv and runs the pipeline), or activate the project's virtualenv (`. .venv/bin/activate`) "
             "and run the command again")
