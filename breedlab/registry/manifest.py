"""Typed, schema-versioned manifests.

A manifest says what an artifact is and where it came from. Its id is the
sha256 of the canonical JSON of its *identity* fields (schema, kind, name,
parents, operator, recipe, data, files): the same content registered twice
gets the same id. The *record* fields (created UTC, breedlab version, host,
metrics) describe the act of registering; they are covered by the digest of
the whole manifest file that the ``registered`` event carries, so editing
any byte of a manifest is still detected by ``verify``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

from breedlab.registry.canonical import canonical_json, is_sha256, sha256_json
from breedlab.registry.errors import ManifestError, UnsafeFileError

SCHEMA_VERSION = 1
KINDS = (
    "parent", "child", "adapter", "quantized", "merged",
    "dataset", "eval-suite", "router-policy", "profile", "packet", "engine-check", "search",
)
MODEL_KINDS = ("parent", "child", "adapter", "quantized", "merged")
IDENTITY_FIELDS = ("schema", "kind", "name", "parents", "operator", "recipe", "data", "files")
RECORD_FIELDS = ("created", "breedlab_version", "host", "metrics")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$")


@dataclass(frozen=True)
class FileEntry:
    """One file of an artifact: its content hash and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What an artifact is (identity fields) and how it was registered (record fields)."""

    kind: str
    name: str
    files: dict[str, FileEntry]
    operator: str
    recipe: dict[str, Any]
    parents: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    schema: int = SCHEMA_VERSION
    created: str = ""
    breedlab_version: str = ""
    host: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return sha256_json(self.identity())

    def identity(self) -> dict[str, Any]:
        body = self.to_dict()
        return {key: body[key] for key in IDENTITY_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready values (shares ``recipe`` and ``metrics``: read it, do not edit it).
        Built field by field, not with asdict (a deep copy): ids are computed from it on every read."""
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["files"] = {rel: {"sha256": e.sha256, "size": e.size} for rel, e in self.files.items()}
        body["parents"] = list(self.parents)
        body["data"] = list(self.data)
        return body

    def to_json(self) -> bytes:
        """The manifest file: the canonical body plus its id, one trailing newline."""
        return canonical_json({"id": self.id, **self.to_dict()}) + b"\n"


def check_file_name(name: str) -> str:
    """Refuse names that could escape the artifact folder or hide a pickle."""
    pure = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in name.split("/"))
    ):
        raise UnsafeFileError(f"refused file name {name!r}: must be a relative path inside the artifact")
    if pure.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeFileError(
            f"refused {name!r}: {pure.suffix} files are pickles; breedlab stores safetensors only"
        )
    return name


def validate_header(manifest: Manifest) -> Manifest:
    """Check every field but the files, so a bad request is refused before any write."""
    if manifest.schema != SCHEMA_VERSION:
        raise ManifestError(f"unsupported manifest schema {manifest.schema!r} (expected {SCHEMA_VERSION})")
    if manifest.kind not in KINDS:
        raise ManifestError(f"unknown kind {manifest.kind!r}; known kinds: {', '.join(KINDS)}")
    if not isinstance(manifest.name, str) or not NAME_PATTERN.match(manifest.name) or ".." in manifest.name:
        raise ManifestError(f"bad artifact name {manifest.name!r}: use letters, digits and . _ / + -")
    if not isinstance(manifest.operator, str) or not manifest.operator:
        raise ManifestError("manifest needs an operator name")
    if not isinstance(manifest.recipe, dict) or not isinstance(manifest.metrics, dict):
        raise ManifestError("recipe and metrics must be JSON objects")
    for ref in (*manifest.parents, *manifest.data):
        if not isinstance(ref, str) or not is_sha256(ref):
            raise ManifestError(f"parent/data reference {ref!r} is not an artifact id")
    try:
        canonical_json(manifest.to_dict())
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"manifest is not plain JSON (no NaN, no objects): {exc}") from exc
    return manifest


def validate(manifest: Manifest) -> Manifest:
    """Check every field's type and value; raise ManifestError naming the problem."""
    validate_header(manifest)
    if not manifest.files:
        raise ManifestError("an artifact needs at least one file")
    for name, entry in manifest.files.items():
        check_file_name(name)
        if not is_sha256(entry.sha256) or not isinstance(entry.size, int) or entry.size < 0:
            raise ManifestError(f"file {name!r} has a bad sha256 or size")
    return manifest


def parse(raw: bytes, *, source: str = "manifest", check_id: bool = True) -> Manifest:
    """Parse and validate manifest bytes; the stored id must match the content."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise ManifestError(f"{source}: a manifest must be a JSON object")
    claimed = body.pop("id", None)
    unknown = set(body) - set(IDENTITY_FIELDS) - set(RECORD_FIELDS)
    missing = {"kind", "name", "files", "operator", "recipe"} - set(body)
    if unknown or missing:
        raise ManifestError(f"{source}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
    try:
        files = {name: FileEntry(**entry) for name, entry in body.pop("files").items()}
        manifest = Manifest(
            files=files,
            parents=tuple(body.pop("parents", ())),
            data=tuple(body.pop("data", ())),
            **body,
        )
    except (TypeError, AttributeError) as exc:
        raise ManifestError(f"{source}: malformed field ({exc})") from exc
    validate(manifest)
    if check_id and claimed is not None and claimed != manifest.id:
        raise ManifestError(f"{source}: content hashes to {manifest.id[:12]}, not to its id {str(claimed)[:12]}")
    return manifest
