"""One registry shape for every axis of the benchmark: front-ends and filterbanks (here), heads
(`benchmark.model.heads`) and tasks (`tasks.registry`). Backbones are timm's own registry.

A `Registry` maps a name to its metadata record (`info`, a frozen dataclass the report reads without
building anything) and, where the axis builds a module, its factory (`create`). Registering a name twice
is an error; an unknown name is a `KeyError` that lists the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

I = TypeVar("I")  # noqa: E741  (the info record's type)
F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[I]):
    def __init__(self, kind: str, plural: str) -> None:
        self.kind, self.plural = kind, plural
        self._entries: dict[str, tuple[I, Callable[..., Any] | None]] = {}

    def add(self, name: str, info: I, factory: Callable[..., Any] | None = None) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = (info, factory)

    def register(self, name: str, info: I) -> Callable[[F], F]:
        """Decorator registering a factory with its info (the name is checked now and when it is applied)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def add(factory: F) -> F:
            self.add(name, info, factory)
            return factory

        return add

    def remove(self, name: str) -> None:
        """Forget `name` (throw-away registrations of tests and plug-ins); unknown names are ignored."""
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def info(self, name: str) -> I:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self.names())}")
        return self._entries[name][0]

    def names(self, where: Callable[[I], bool] | None = None) -> list[str]:
        """Registered names, sorted; only those whose info satisfies `where` when given."""
        return sorted(n for n, (info, _) in self._entries.items() if where is None or where(info))

    def create(self, name: str, **kwargs: Any) -> Any:
        info = self.info(name)
        factory = self._entries[name][1]
        if factory is None:
            raise TypeError(f"{self.kind} {name!r} is registered as data ({type(info).__name__}); nothing to build")
        return factory(**kwargs)
