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
        self._families: dict[str, Callable[[str], T]] = {}  # prefix -> factory of the entry of a name

    def register_family(self, prefix: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
        """Every name `<prefix><rest>` is an entry, made by the decorated `factory(rest)` (timm's
        models: `timm/<name>`); whether `rest` exists is the factory's to say."""
        def add(factory: Callable[[str], T]) -> Callable[[str], T]:
            self._families[prefix] = factory
            return factory

        return add

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
        families = "".join(f", {prefix}<name>" for prefix in self._families)
        return (f"unknown {self.kind} {name!r}; {meant}valid {self.kind}s: {', '.join(self.names())}{families} "
                f"(a new {self.kind} is a module in {self.home}/ that registers itself)")

    def _family(self, name: str) -> tuple[str, Callable[[str], T]] | None:
        return next(((p, f) for p, f in self._families.items() if name.startswith(p) and len(name) > len(p)), None)

    def check(self, name: str) -> str:
        """`name`, or a ValueError that says what is registered (`unknown`)."""
        if name not in self._entries and self._family(name) is None:
            raise ValueError(self.unknown(name))
        return name

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        prefix, factory = self._family(self.check(name))
        return factory(name[len(prefix):])

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list:
        """Every entry and every family's factory."""
        return [*self._entries.values(), *self._families.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or self._family(name) is not None


def import_submodules(package: str) -> None:
    """Import every module of `package` (not its sub-packages' contents), so that they register."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
