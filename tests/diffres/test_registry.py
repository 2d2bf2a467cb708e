"""The one registry shape (`diffres.registry.Registry`) every axis uses: front-ends, filterbanks, heads, tasks."""

from dataclasses import dataclass

import pytest

from diffres.registry import Registry


@dataclass(frozen=True)
class Info:
    name: str
    fast: bool


def test_register_create_info_names_and_the_errors():
    reg: Registry[Info] = Registry("widget", "widgets")

    @reg.register("b", Info("b", fast=True))
    def build_b(size: int) -> tuple[str, int]:
        return ("b", size)

    reg.add("a", Info("a", fast=False))  # data only: an info without a factory
    assert reg.names() == ["a", "b"] and reg.names(lambda i: i.fast) == ["b"] and "a" in reg
    assert reg.info("b") == Info("b", True) and reg.create("b", size=3) == ("b", 3)
    with pytest.raises(KeyError, match="unknown widget 'c'; known widgets: a, b"):
        reg.info("c")
    with pytest.raises(KeyError, match="unknown widget 'c'"):
        reg.create("c")
    with pytest.raises(TypeError, match="widget 'a' is registered as data"):
        reg.create("a")
    with pytest.raises(ValueError, match="widget 'b' is already registered"):
        reg.register("b", Info("b", True))
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", Info("a", True))
    reg.remove("a")
    reg.remove("never-there")
    assert reg.names() == ["b"]


def test_every_axis_is_one_of_them():
    from diffres.filterbanks.registry import FILTERBANKS
    from diffres.frontends import FRONTENDS

    assert isinstance(FRONTENDS, Registry) and isinstance(FILTERBANKS, Registry)
    assert "diffres" in FRONTENDS and "mel" in FILTERBANKS
