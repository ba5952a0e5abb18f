"""The build config (shipped domains.yaml and error cases) and the source-type registry."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import yaml

from breedlab.data.config import DEFAULT_CONFIG_PATH, BuildConfig, ConfigError, load_config, parse_config
from breedlab.data.sources import SourceTypeError, get_source_type, source, source_type_names
from breedlab.data.sources.registry import unregister

REQUIRED_DOMAINS = {"code", "legal", "medical", "sysadmin", "general"}


def minimal(**overrides) -> dict:
    config = {
        "domains": [
            {"name": "code", "sources": [{"type": "python-stdlib"}]},
        ]
    }
    config.update(overrides)
    return config


def test_shipped_domains_yaml_loads_against_the_real_dataclasses():
    config = load_config()
    assert DEFAULT_CONFIG_PATH.name == "domains.yaml"
    assert REQUIRED_DOMAINS <= {d.name for d in config.domains}
    for domain in config.domains:
        assert domain.sources and 0 < domain.min_chars <= domain.max_chars
        for spec in domain.sources:
            assert isinstance(spec.params, get_source_type(spec.type).params)
            assert spec.params.fetch_command() and spec.label()
    assert abs(sum(vars(config.fractions()).values()) - 1) < 1e-9


def test_shipped_yaml_sets_only_known_top_level_fields():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert set(raw) <= {f.name for f in fields(BuildConfig)}


def test_required_source_types_are_registered():
    assert {"python-stdlib", "pip-package-files", "npm-package", "debian-package"} <= set(source_type_names())


def test_defaults_fill_in_and_yaml_lists_become_tuples():
    config = parse_config(minimal(seed=3))
    assert config.seed == 3 and config.train_fraction == 0.9
    assert isinstance(config.domains[0].sources[0].params.skip_dirs, tuple)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(colour="blue"), r"unknown key\(s\) \['colour'\]"),
        (lambda c: c["domains"][0].update(max_doc=5), r"domains\[0\] \(code\): unknown key\(s\) \['max_doc'\]"),
        (lambda c: c["domains"][0]["sources"][0].update(package="x"), r"sources\[0\] \(python-stdlib\): unknown key"),
        (lambda c: c["domains"][0]["sources"][0].update(type="ftp-site"), "unknown source type 'ftp-site'"),
        (lambda c: c["domains"][0]["sources"][0].pop("type"), "needs a 'type'"),
        (lambda c: c["domains"][0].update(max_docs="many"), "max_docs: expected an integer"),
        (lambda c: c["domains"][0].update(min_chars=500, max_chars=100), "min_chars <= max_chars"),
        (lambda c: c["domains"].append(dict(c["domains"][0])), "duplicate domain names"),
        (lambda c: c["domains"][0].update(name="Code"), "lower-case"),
        (lambda c: c.update(train_fraction=0.5), "add up to 1"),
        (lambda c: c.update(minhash_bands=7), "must divide"),
        (lambda c: c.update(domains=[]), "non-empty list"),
        (lambda c: c["domains"][0]["sources"].append({"type": "python-stdlib"}), "share a label"),
    ],
)
def test_bad_configs_are_rejected_with_a_clear_message(mutate, message):
    config = minimal()
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        parse_config(config)


def test_source_parameters_are_checked_by_their_type():
    pip_source = {"type": "pip-package-files", "package": "spdx", "files": ["*.txt"], "parser": "sotu"}
    with pytest.raises(ConfigError, match="unknown parser 'sotu'"):
        parse_config({"domains": [{"name": "legal", "sources": [pip_source]}]})
    missing = {"type": "npm-package", "package": "x", "files": ["a"]}
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['version'\]"):
        parse_config({"domains": [{"name": "g", "sources": [missing]}]})
    deb = {"type": "debian-package", "packages": ["manpages"], "renderer": "pdf"}
    with pytest.raises(ConfigError, match="unknown renderer 'pdf'"):
        parse_config({"domains": [{"name": "s", "sources": [deb]}]})


def test_load_config_reports_an_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


@dataclass(frozen=True)
class DemoParams:
    def label(self) -> str:
        return "demo"

    def fetch_command(self) -> str:
        return "true"


def test_source_registry_rejects_duplicates_bad_names_and_unknowns():
    try:
        source("test-demo", params=DemoParams)(lambda params, ctx: None)
        assert get_source_type("test-demo").params is DemoParams
        with pytest.raises(SourceTypeError, match="already registered"):
            source("test-demo", params=DemoParams)(lambda params, ctx: None)
    finally:
        unregister("test-demo")
    for bad in ("Demo", "demo_type", "-demo", "demo--x", ""):
        with pytest.raises(SourceTypeError, match="lower-case"):
            source(bad, params=DemoParams)
    with pytest.raises(SourceTypeError, match="params must be a dataclass"):
        source("test-plain", params=dict)
    with pytest.raises(SourceTypeError, match="known source types: .*python-stdlib"):
        get_source_type("nope")
