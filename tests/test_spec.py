"""The one ``name:key=value,...`` grammar (advlab.spec) and the registries built on it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from advlab.errors import AdvlabError
from advlab.spec import Registry, convert, parse_option, parse_spec, split_chain, split_spec


def test_split_spec_strips_and_drops_empty_items() -> None:
    assert split_spec(" pgd : steps=20, ,norm=l2 ") == ("pgd", ["steps=20", "norm=l2"])
    assert split_spec("fgsm") == ("fgsm", [])


def test_values_read_as_yaml_without_defaults() -> None:
    name, params = parse_spec("pgd:steps=20,alpha=0.01,random_start=false,norm=l2,loss=margin")
    assert name == "pgd"
    assert params == {"steps": 20, "alpha": 0.01, "random_start": False, "norm": "l2",
                      "loss": "margin"}  # fmt: skip
    assert type(params["steps"]) is int and type(params["alpha"]) is float


def test_an_item_without_equals_names_the_spec() -> None:
    with pytest.raises(AdvlabError, match=r"attack option 'steps' in 'pgd:steps' must look like"):
        parse_spec("pgd:steps")
    with pytest.raises(AdvlabError, match=r"--arch 'width' must look like key=value"):
        parse_option("width", "--arch")


def test_values_take_the_type_of_their_default() -> None:
    defaults = {"quality": 75, "sigma": 0.1, "flag": True, "where": "input"}
    name, params = parse_spec("jpeg:quality=60,sigma=1,flag=False,where=first-layer", defaults,
                              kind="defense")  # fmt: skip
    assert name == "jpeg"
    assert params == {"quality": 60, "sigma": 1.0, "flag": False, "where": "first-layer"}
    assert type(params["sigma"]) is float
    # "-" in a key reads as "_"
    assert parse_spec("x:min-scale=0.5", {"min_scale": 0.8})[1] == {"min_scale": 0.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jpeg:quality", "defense parameter 'quality' needs a value: write jpeg:quality=VALUE"),
        ("jpeg:quality=", "needs a value"),
        ("jpeg:q=5", "defense 'jpeg' has no parameter 'q': use quality"),
        ("jpeg:quality=high", "jpeg:quality must be a int, got 'high'"),
        ("jpeg:quality=75.0", "must be a int"),
    ],
)
def test_typed_errors(text: str, message: str) -> None:
    with pytest.raises(AdvlabError, match=message):
        parse_spec(text, {"quality": 75}, kind="defense")


def test_convert() -> None:
    assert convert("TRUE", False) is True
    assert convert("3", 1.0) == 3.0
    assert convert("abc", None) == "abc"
    with pytest.raises(AdvlabError, match="flag must be a bool"):
        convert("yes", False, "flag")


def test_split_chain() -> None:
    assert split_chain("jpeg:quality=75+ bits") == ["jpeg:quality=75", "bits"]
    assert split_chain(["jpeg", "bits+median"]) == ["jpeg", "bits", "median"]
    for bad in ("jpeg++bits", "", []):
        with pytest.raises(AdvlabError, match="empty defense"):
            split_chain(bad)


@dataclass(frozen=True)
class _Entry:
    name: str


def test_registry_names_aliases_and_errors() -> None:
    registry: Registry[_Entry] = Registry("detector")
    squeeze = registry.register(_Entry("feature-squeezing"), "squeeze")
    registry.register(_Entry("binary"))
    assert list(registry) == ["feature-squeezing", "binary"]
    assert registry.resolve("Feature_Squeezing") is squeeze
    assert registry.resolve(" squeeze ") is squeeze
    assert "squeeze" in registry and "binary" in registry and "magnet" not in registry
    assert 3 not in registry
    with pytest.raises(AdvlabError, match="unknown detector 'magnet': use one of binary, feature"):
        registry.resolve("magnet")
