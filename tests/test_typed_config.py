"""The shared typed-config reader: YAML mappings into frozen dataclasses, every key and value checked."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from breedlab.typed_config import from_mapping, read_section, with_overrides


class ToyConfigError(ValueError):
    """A caller's own exception class: every problem must arrive as one of these."""


@dataclass(frozen=True)
class Inner:
    depth: int = 1
    label: str = "x"


@dataclass(frozen=True)
class Toy:
    name: str
    ratio: float = 0.5
    steps: int = 10
    enabled: bool = True
    limit: float | None = 2.0
    tags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")


def build(body, **kwargs) -> Toy:
    return from_mapping(Toy, body, "toy.yaml", error=ToyConfigError, **kwargs)


def test_a_valid_mapping_fills_defaults_and_converts_what_yaml_cannot_say():
    toy = build({"name": "a", "ratio": 1, "tags": ["x", 8], "limit": None, "inner": {"depth": 3}})
    assert toy.ratio == 1.0 and isinstance(toy.ratio, float)  # an int written for a float field
    assert toy.tags == ("x", "8")  # a YAML list becomes a tuple; a number in it names a string
    assert toy.limit is None and toy.steps == 10 and toy.inner == Inner(depth=3)


def test_an_unknown_key_is_named_with_the_allowed_keys():
    with pytest.raises(ToyConfigError, match=r"toy.yaml: unknown key\(s\) \['stpes'\]; allowed keys: \[.*'steps'"):
        build({"name": "a", "stpes": 3})
    with pytest.raises(ToyConfigError, match=r"unknown toy keys \['stpes'\]"):
        build({"name": "a", "stpes": 3}, keys="toy keys")


def test_a_missing_required_key_is_an_error():
    with pytest.raises(ToyConfigError, match=r"toy.yaml: missing required key\(s\) \['name'\]"):
        build({"ratio": 0.3})


@pytest.mark.parametrize("body, message", [
    ({"steps": 2.5}, "steps: expected an integer, got 2.5"),
    ({"steps": True}, "steps: expected an integer"),  # a YAML bool is no count
    ({"ratio": "half"}, "ratio: expected a number"),
    ({"ratio": False}, "ratio: expected a number"),
    ({"enabled": "yes"}, "enabled: expected bool"),
    ({"name": 3}, "name: expected str"),
    ({"limit": "none"}, "limit: expected a number"),
    ({"tags": "x"}, "tags: expected a list"),
    ({"tags": ["x", {"y": 1}]}, r"tags\[1\]: expected str"),
    ({"ratio": None}, "ratio: expected a number, got None"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_its_key(body, message):
    with pytest.raises(ToyConfigError, match=message):
        build({"name": "a", **body})


def test_an_error_in_a_nested_section_names_its_path():
    with pytest.raises(ToyConfigError, match=r"toy.yaml: inner: unknown key\(s\) \['deepth'\]"):
        build({"name": "a", "inner": {"deepth": 2}})
    with pytest.raises(ToyConfigError, match="toy.yaml: inner: depth: expected an integer"):
        build({"name": "a", "inner": {"depth": "deep"}})


def test_the_dataclass_own_checks_arrive_as_the_callers_error_with_where():
    with pytest.raises(ToyConfigError, match=r"toy.yaml: ratio must be in \(0, 1\]"):
        build({"name": "a", "ratio": 3})
    with pytest.raises(ToyConfigError, match="toy.yaml: expected a mapping, got list"):
        build(["name"])


def test_fixed_fields_come_from_the_caller_and_the_mapping_may_not_set_them():
    assert build({"name": "a"}, fixed={"inner": Inner(depth=7)}).inner.depth == 7
    with pytest.raises(ToyConfigError, match=r"unknown key\(s\) \['inner'\]"):
        build({"name": "a", "inner": {}}, fixed={"inner": Inner()})


def test_overrides_are_checked_like_a_mapping():
    toy = with_overrides(Toy(name="a"), {"tags": ["p"], "ratio": 1}, "profile", error=ToyConfigError)
    assert toy.tags == ("p",) and toy.ratio == 1.0 and toy.name == "a"
    with pytest.raises(ToyConfigError, match=r"profile: unknown key\(s\) \['ratoi'\]"):
        with_overrides(Toy(name="a"), {"ratoi": 1}, "profile", error=ToyConfigError)
    with pytest.raises(ToyConfigError, match="profile: steps: expected an integer"):
        with_overrides(Toy(name="a"), {"steps": "many"}, "profile", error=ToyConfigError)


def test_a_section_is_read_and_absent_or_empty_means_every_default(tmp_path):
    path = tmp_path / "eco.yaml"
    path.write_text("toy:\n  name: a\n  steps: 4\nempty:\n")
    assert build(read_section(path, "toy", error=ToyConfigError)).steps == 4
    assert read_section(path, "empty") == {} and read_section(path, "absent") == {}


@pytest.mark.parametrize("text, message", [
    ("toy: [1, 2]\n", "section 'toy': expected a mapping, got list"),
    ("- toy\n", "expected a mapping, got list"),
    ("toy: {name: [\n", "cannot read config file"),
])
def test_a_malformed_file_or_section_is_the_callers_error(tmp_path, text, message):
    path = tmp_path / "eco.yaml"
    path.write_text(text)
    with pytest.raises(ToyConfigError, match=message):
        read_section(path, "toy", error=ToyConfigError)


def test_an_unreadable_file_is_the_callers_error(tmp_path):
    with pytest.raises(ToyConfigError, match=r"cannot read config file .*absent.yaml"):
        read_section(tmp_path / "absent.yaml", "toy", error=ToyConfigError)
