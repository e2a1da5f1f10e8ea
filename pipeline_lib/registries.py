"""One place to look up any registry by the kind of name params.yaml uses."""
from __future__ import annotations

from pipeline_lib.registry import Registry


def get(kind: str) -> Registry:
    if kind == "dataset":
        from pipeline_lib.data import DATASETS as registry
    elif kind == "architecture":
        from pipeline_lib.models import ARCHITECTURES as registry
    elif kind == "method":
        from pipeline_lib.methods import METHODS as registry
    elif kind == "attribution":
        from pipeline_lib.attribution import ATTRIBUTIONS as registry
    else:
        raise KeyError(f"no registry of {kind}s")
    return registry
