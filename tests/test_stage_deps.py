"""dvc.yaml tells the truth: every project module a stage runs is among that stage's deps, and
nothing else is.

The imports are read from the code (function-level imports included) and followed transitively
(`pipeline_lib.provenance.closure`), so a stage that starts using a module without declaring it
fails here instead of leaving its results silently stale after that module changes, and a stage
that declares code it does not run (a method's module as a dep of the shard stage) fails too,
since every edit there would rerun it for nothing.
"""
import ast
from pathlib import Path

import pytest
import yaml

from pipeline_lib.provenance import PLUMBING, closure as code_closure, module_file

ROOT = Path(__file__).resolve().parents[1]


def closure(entry: str) -> set[str]:
    return code_closure([entry])


def read_as_code(name: str) -> set[str]:
    """Source files a stage reads as data rather than imports: the report compares each run's
    training-code digests with today's code, so it reads every method's and architecture's."""
    if name != "report":
        return set()
    from pipeline_lib.methods import METHODS
    from pipeline_lib.models import ARCHITECTURES
    from pipeline_lib.training.identity import training_files
    return {f for m in METHODS.names() for a in ARCHITECTURES.names() for f in training_files(m, a)}


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_entry(stage: dict) -> str:
    body = stage.get("do", stage)
    module = body["cmd"].split("python3 -m ", 1)[1].split()[0]
    return module_file(module)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def declared_deps(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("do", stage).get("deps", [])]


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_module_a_stage_runs_is_a_declared_dep(name):
    stage = stages()[name]
    deps = declared_deps(stage)
    missing = sorted(p for p in closure(stage_entry(stage)) | read_as_code(name) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} runs {missing} without declaring them in its deps"


@pytest.mark.parametrize("name", sorted(stages()))
def test_a_stage_declares_no_code_it_does_not_run(name):
    stage = stages()[name]
    runs = closure(stage_entry(stage)) | read_as_code(name) | PLUMBING
    code = [d for d in declared_deps(stage) if d.split("/")[0] in ("pipeline_lib", "stages")]
    idle = sorted(f.relative_to(ROOT).as_posix() for d in code for f in
                  ([ROOT / d] if d.endswith(".py") else (ROOT / d).rglob("*.py"))
                  if f.relative_to(ROOT).as_posix() not in runs)
    assert not idle, f"dvc.yaml stage {name!r} declares {idle} among its deps, but does not run them"


def test_the_import_reader_follows_function_level_and_from_imports():
    # RelDrop imports LRP inside a function (zennit is slow to import); the closure must see it.
    assert "pipeline_lib/attribution/lrp.py" in closure("pipeline_lib/methods/reldrop.py")
    # `from pipeline_lib.methods import (sgdrop, ...)` names submodules.
    assert "pipeline_lib/methods/sgdrop.py" in closure("pipeline_lib/methods/__init__.py")
    assert not covered("pipeline_lib/metrics/coverage.py", ["pipeline_lib/metric"])


# ---- params: each stage declares the params.yaml keys it reads ----

READS_PARAMS_FILE = ("params_or_exit", "load_params", "load_params_text", "params_with")


def reads_params_file(name: str) -> bool:
    """Whether a stage's code uses a params.yaml reader (the per-setup stages read configure's files)."""
    return any(isinstance(node, ast.Name) and node.id in READS_PARAMS_FILE or
               isinstance(node, ast.alias) and node.name in READS_PARAMS_FILE
               for f in closure(stage_entry(stages()[name])) for node in ast.walk(ast.parse((ROOT / f).read_text())))


def declared_params(stage: dict) -> list[str]:
    """Dotted keys; "" for the whole file (`- params.yaml:`)."""
    out = []
    for p in stage.get("do", stage).get("params", []):
        out.extend([""] if isinstance(p, dict) else [p])
    return out


class Reads:
    """Params that record the sections (top-level keys) read through them; a method of the schema
    (cells) runs with the recorder as `self`, a pydantic method (model_dump) reads every section.
    A setup's params (`setup(name)`) read `setups`, and record what is read through them: a
    section that the setup changes is read from the file's `setups`, any other from the section."""

    def __init__(self, params, seen: set):
        self._params, self._seen = params, seen

    def __getattr__(self, name):
        if name == "setup":
            self._seen.add("setups")
            return lambda *a, **k: Reads(self._params.setup(*a, **k), self._seen)
        if name in type(self._params).model_fields:
            self._seen.add(name)
        elif name in type(self._params).__dict__:
            return lambda *a, **k: getattr(type(self._params), name)(self, *a, **k)
        else:
            self._seen.update(type(self._params).model_fields)
        return getattr(self._params, name)


@pytest.mark.parametrize("name", sorted(stages()))
def test_a_stage_declares_params_exactly_when_it_reads_params_yaml(name):
    reads, declares = reads_params_file(name), bool(declared_params(stages()[name]))
    assert reads == declares, (f"dvc.yaml stage {name!r} " + ("reads params.yaml without declaring params" if reads
                               else "declares params but reads only the files configure wrote"))


@pytest.mark.parametrize("name", sorted(n for n in stages() if reads_params_file(n)
                                        and "" not in declared_params(stages()[n])))
def test_a_stage_declares_every_params_key_it_reads(name, tmp_path, monkeypatch):
    """The stage runs on the tiny params with a recorder in place of its params; a stage that
    reads part of a section declares the section."""
    import importlib

    from click.testing import CliRunner

    from tests.conftest import tiny_params
    from tests.dvc_workspace import OVERRIDES
    stage = stages()[name]
    module_name, *args = stage["cmd"].split("python3 -m ", 1)[1].split()
    module, seen = importlib.import_module(module_name), set()
    params = tiny_params(**OVERRIDES)
    monkeypatch.setattr(module, "params_or_exit", lambda *a, **k: Reads(params, seen))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(module.main, args)
    assert result.exit_code == 0, result.output
    declared = declared_params(stage)
    undeclared = sorted(seen - set(declared))
    assert seen and not undeclared, f"dvc.yaml stage {name!r} reads {undeclared} without declaring them in its params"
