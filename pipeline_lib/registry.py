"""Name registries: every dataset, architecture, method and attribution is one name away (as in
timm). A package's modules register themselves with a decorator, and the package imports all of
its modules when it is imported (`import_submodules`), so a new file is found without a list."""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, home: str):
        """`home`: the package where a new entry goes, named in the error for an unknown name."""
        self.kind, self.home = kind, home
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def unknown(self, name: str) -> str:
        """What to say of a name that is not registered: the closest names, all names, and where
        a new one goes."""
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
        meant = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        return (f"unknown {self.kind} {name!r}; {meant}valid {self.kind}s: {', '.join(self.names())} (a new "
                f"{self.kind} is a module in {self.home}/ that registers itself)")

    def check(self, name: str) -> str:
        """`name`, or a ValueError that says what is registered (`unknown`)."""
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return name

    def get(self, name: str) -> T:
        return self._entries[self.check(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_submodules(package: str) -> None:
    """Import every module of `package` (not its sub-packages' contents), so that they register."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
