"""A home's own configs/*.yaml over the shipped files: the loaders read them, a typo is refused with the
file and the key, and ``breedlab config show`` says where each value came from."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.demo.profiles import load_profile
from breedlab.ecosystem.rollout import load_rollout_config
from breedlab.evaluation.gate_config import load_evaluation_config
from breedlab.home import Home
from breedlab.typed_config import use_home_configs


@pytest.fixture
def home(tmp_path):
    configs = tmp_path / "home" / "configs"
    configs.mkdir(parents=True)
    (configs / "ecosystem.yaml").write_text("rollout:\n  min_approval: 0.6\n  canary_share: 0.2\n")
    (configs / "evaluation.yaml").write_text("alpha: 0.01\n")
    (configs / "demo.yaml").write_text("quick:\n  queries_per_window: 12\n")
    yield Home.resolve(tmp_path / "home")
    use_home_configs(None)  # later tests read the shipped files


def test_the_loaders_read_the_homes_overrides_over_the_shipped_files(home):
    rollout = load_rollout_config()
    assert rollout.min_approval == 0.6 and rollout.canary_share == 0.2 and rollout.min_shadow_queries == 8
    assert load_evaluation_config().alpha == 0.01
    assert load_profile("quick").queries_per_window == 12 and load_profile("quick").domains  # the rest shipped
    use_home_configs(None)
    assert load_rollout_config().min_approval is None  # without the home: the shipped values


def test_a_typo_in_a_home_config_is_refused_with_the_file_and_the_key(home):
    (home.root / "configs" / "ecosystem.yaml").write_text("rollout:\n  min_aproval: 0.6\n")
    with pytest.raises(ValueError, match=r"configs/ecosystem\.yaml: rollout: unknown .*\['min_aproval'\]"):
        load_rollout_config()


def test_config_show_names_the_origin_of_every_value(home):
    result = CliRunner().invoke(app, ["config", "show", "rollout", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "min_approval" in row)
    assert "0.6" in line and "home:" in line
    shipped = next(row for row in result.output.splitlines() if "min_shadow_queries" in row)
    assert "shipped:" in shipped
    unknown = CliRunner().invoke(app, ["config", "show", "nope", "--home", str(home.root)])
    assert unknown.exit_code != 0 and "no config section 'nope'" in unknown.output
