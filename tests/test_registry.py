"""Registry behaviour: content addressing, identity, refusals, lifecycle, lineage."""

from __future__ import annotations

import json
import pickle

import pytest
from registry_helpers import register_weights, safetensors_bytes, snapshot, write_file

from breedlab.registry import (
    ManifestError,
    NotFoundError,
    Registry,
    RegistryError,
    TransitionError,
    UnsafeFileError,
    verify,
)
from breedlab.registry.lineage import ancestry_tree, generations
from breedlab.registry.manifest import parse


@pytest.fixture()
def reg(tmp_path):
    return Registry.open(tmp_path / "registry")


def test_same_files_twice_store_once_and_share_an_id(reg, tmp_path):
    first = register_weights(reg, tmp_path)
    objects_before = reg.objects.all_digests()
    second = register_weights(reg, tmp_path)
    assert first.id == second.id
    assert reg.objects.all_digests() == objects_before
    assert [e.type for e in reg.events()] == ["registered"]


def test_identical_content_in_two_artifacts_is_one_object(reg, tmp_path):
    a = register_weights(reg, tmp_path, name="a", content=b"same")
    b = register_weights(reg, tmp_path, name="b", content=b"same")
    assert a.id != b.id
    assert a.manifest.files["model.safetensors"] == b.manifest.files["model.safetensors"]
    assert (a.path / "model.safetensors").samefile(b.path / "model.safetensors")


def test_id_is_hash_of_canonical_identity_and_reparses(reg, tmp_path):
    art = register_weights(reg, tmp_path)
    raw = (reg.manifests_dir / f"{art.id}.json").read_bytes()
    assert parse(raw).id == art.id
    assert art.manifest.created.endswith("Z") and art.manifest.breedlab_version


def test_card_has_front_matter_with_base_model(reg, tmp_path):
    parent = register_weights(reg, tmp_path, name="p")
    child = register_weights(reg, tmp_path, name="c", content=b"c", kind="child", parents=[parent.id])
    card = (child.path / "README.md").read_text()
    assert card.startswith("---\n")
    assert f"- breedlab:{parent.id}" in card and "base_model_relation: finetune" in card


@pytest.mark.parametrize(
    "call, error",
    [
        (dict(kind="weights"), "unknown kind"),
        (dict(name="../escape"), "bad artifact name"),
        (dict(files_name="../x"), "relative path"),
        (dict(files_name="/etc/passwd"), "relative path"),
        (dict(files_name="a/../../x"), "relative path"),
        (dict(files_name="model.bin"), "pickles"),
        (dict(recipe={"lr": float("nan")}), "not plain JSON"),
        (dict(recipe={"fn": object()}), "not plain JSON"),
        (dict(parents=["not-an-id"]), "not an artifact id"),
        (dict(parents=["a" * 64]), "no artifact matches"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(reg, tmp_path, call, error):
    source = write_file(tmp_path / "src", "f.safetensors", safetensors_bytes(b"payload"))
    before = snapshot(reg.root)
    with pytest.raises(RegistryError, match=error):
        reg.register(
            call.get("kind", "parent"), call.get("name", "ok"), {call.get("files_name", "f.safetensors"): source},
            operator="import", recipe=call.get("recipe", {}), parents=call.get("parents", ()),
        )
    assert snapshot(reg.root) == before


def test_safetensors_whose_length_prefix_looks_like_a_pickle_is_stored(reg, tmp_path):
    header = json.dumps({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).ljust(0x0280)
    weights = write_file(tmp_path, "model.safetensors", (0x0280).to_bytes(8, "little") + header.encode() + b"x")
    assert weights.read_bytes()[:2] == b"\x80\x02"  # the bytes of a pickle PROTO 2 opcode
    assert reg.register("parent", "lucky", {"model.safetensors": weights}, operator="import", recipe={}).id


@pytest.mark.parametrize("payload", [
    pickle.dumps({"weights": [1, 2, 3]}, protocol=2),
    pickle.dumps({"weights": [1, 2, 3]}, protocol=5),
])
def test_pickle_disguised_as_safetensors_is_refused(reg, tmp_path, payload):
    disguised = write_file(tmp_path, "model.safetensors", payload)
    before = snapshot(reg.root)
    with pytest.raises(UnsafeFileError, match="not unpickled"):
        reg.register("parent", "sneaky", {"model.safetensors": disguised}, operator="import", recipe={})
    assert snapshot(reg.root) == before


@pytest.mark.parametrize("raw, error", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"kind": "parent"}', "missing fields"),
    (b'{"kind": "parent", "name": "x", "files": {}, "operator": "o", "recipe": {}, "evil": 1}', "unknown fields"),
    (b'{"kind": "blob", "name": "x", "files": {"a": {"sha256": "' + b"0" * 64 + b'", "size": 1}},'
     b' "operator": "o", "recipe": {}}', "unknown kind"),
])
def test_malformed_manifests_are_refused_with_a_clear_error(raw, error):
    with pytest.raises(ManifestError, match=error):
        parse(raw)


def test_lifecycle_follows_the_transition_table(reg, tmp_path):
    art = register_weights(reg, tmp_path)
    assert art.state == "candidate"
    for state in ("shadow", "canary", "champion"):
        reg.transition(art.id, state, event_type="promoted", actor="approver", reason=f"to {state}")
    with pytest.raises(TransitionError, match="not allowed"):
        reg.transition(art.id, "candidate", event_type="promoted", actor="approver", reason="back")
    reg.transition(art.id, "retired", event_type="retired", actor="approver", reason="superseded")
    assert reg.get(art.id).state == "retired"
    assert [e.type for e in reg.events(art.id)] == ["registered", "promoted", "promoted", "promoted", "retired"]
    assert reg.load_manifest(art.id) == art.manifest  # state changes never touch the manifest
    for state in ("canary", "champion"):  # back into service only through shadow (or a rollback)
        with pytest.raises(TransitionError, match="not allowed"):
            reg.transition(art.id, state, event_type="promoted", actor="approver", reason="skip shadow")
    reg.transition(art.id, "shadow", event_type="promoted", actor="approver", reason="re-spawned")
    reg.transition(art.id, "rejected", event_type="rejected", actor="approver", reason="failed live")
    for state in ("candidate", "shadow", "champion"):
        with pytest.raises(TransitionError, match="not allowed"):
            reg.transition(art.id, state, event_type="promoted", actor="approver", reason="rejected is final")


def test_datasets_have_no_lifecycle(reg, tmp_path):
    data = reg.register("dataset", "code/train", {"shard-00000.jsonl": write_file(tmp_path, "s.jsonl", b"{}\n")},
                        operator="data-build", recipe={})
    assert data.state is None
    with pytest.raises(TransitionError, match="no lifecycle"):
        reg.transition(data.id, "champion", event_type="promoted", actor="a", reason="r")


def test_lineage_spans_three_generations(reg, tmp_path):
    parent = register_weights(reg, tmp_path, name="parent", content=b"p")
    child = register_weights(reg, tmp_path, name="child", content=b"c", kind="child", parents=[parent.id])
    grandchild = register_weights(reg, tmp_path, name="grand", content=b"g", kind="child", parents=[child.id])
    assert generations(reg, grandchild.id) == 3
    tree = ancestry_tree(reg, grandchild.id)
    assert "grand" in str(tree.label) and "child" in str(tree.children[0].label)
    assert "parent" in str(tree.children[0].children[0].label)
    assert reg.children(parent.id) == [child.id]
    assert [f for f in verify(reg.root) if f.level == "problem"] == []


def test_get_by_prefix_and_clear_not_found(reg, tmp_path):
    art = register_weights(reg, tmp_path)
    assert reg.get(art.id[:8]).id == art.id
    with pytest.raises(NotFoundError, match="at least 6 hex"):
        reg.get("zz")
    with pytest.raises(NotFoundError, match="no artifact"):
        reg.get("f" * 64)


def test_find_filters_newest_first(reg, tmp_path):
    a = register_weights(reg, tmp_path, name="a", content=b"1")
    b = register_weights(reg, tmp_path, name="b", content=b"2")
    assert [x.id for x in reg.find(kind="parent")] == [b.id, a.id]
    assert [x.id for x in reg.find(name="a")] == [a.id]
