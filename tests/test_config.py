"""Typed configs: YAML + key=value overrides, errors that say expected vs found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from speechssl.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_yaml,
    merge,
    parse_override,
    to_dict,
)


@dataclass
class Inner:
    width: int = 4
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"width must be positive, found {self.width}")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    dims: list[int] = field(default_factory=lambda: [1, 2])
    span: tuple[float, float] = (0.0, 1.0)
    path: str | None = None
    wide: Inner = field(default_factory=lambda: Inner(width=64, kind="b"))


def test_a_partial_section_changes_only_its_keys_of_the_field_default():
    config = from_dict(Outer, {"wide": {"rate": 2}})
    assert config.wide == Inner(width=64, rate=2.0, kind="b"), "width and kind keep the field's default"
    assert from_dict(Outer, {}).wide == Inner(width=64, kind="b")


def test_from_dict_builds_nested_and_converts_ints_to_floats():
    config = from_dict(Outer, {"inner": {"rate": 1, "kind": "b"}, "dims": [3], "span": [1, 2]})
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float)
    assert config.inner.kind == "b"
    assert config.dims == [3]
    assert config.span == (1.0, 2.0)
    assert to_dict(config)["inner"] == {"width": 4, "rate": 1.0, "kind": "b"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"widht": 3}}, "unknown key inner.widht"),
        ({"inner": {"width": "wide"}}, "inner.width: expected int, found 'wide'"),
        ({"inner": {"width": True}}, "inner.width: expected int, found True"),
        ({"inner": {"rate": "fast"}}, "inner.rate: expected float, found 'fast'"),
        ({"inner": {"kind": "c"}}, "inner.kind: expected one of ['a', 'b'], found 'c'"),
        ({"dims": "12"}, "dims: expected a list, found '12'"),
        ({"span": [1]}, "span: expected 2 items, found 1"),
        ({"inner": {"width": -1}}, "inner: width must be positive, found -1"),
        ({"inner": 3}, "inner: expected a mapping for Inner, found 3"),
    ],
)
def test_from_dict_errors_name_key_expected_and_found(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert message in str(err.value)


def test_overrides_are_yaml_parsed_never_evaluated():
    data = apply_overrides(
        {"inner": {"width": 4}}, ["inner.width=8", "inner.rate=1e-3", "name=__import__('os')"]
    )
    assert data["name"] == "__import__('os')"
    config = from_dict(Outer, data)
    assert config.name == "__import__('os')"
    assert config.inner.width == 8
    assert config.inner.rate == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; floats accept it


def test_override_errors():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("inner.width")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_load_yaml_and_merge(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  width: 2\nname: y\n")
    merged = merge({"inner": {"width": 1, "rate": 0.1}}, load_yaml(path))
    assert merged == {"inner": {"width": 2, "rate": 0.1}, "name": "y"}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: expected a mapping"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")
