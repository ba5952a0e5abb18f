"""Reading and writing model folders: safetensors only, never pickle.

A model folder is what ``save_pretrained`` writes (config.json, safetensors
weights, tokenizer files). Pickle-based checkpoints (``.bin``, ``.pt``, torch
zip archives) can run arbitrary code when loaded, so this module refuses to
load any folder that contains one, whatever the file is called, and it never
calls ``torch.load`` or ``pickle``.

The frozen parent is checked against the sha256 of every file recorded in the
registry each time it is loaded (``expected_files``), and ``weights_digest``
hashes the tensors themselves so a breeding run can prove the parent it held
in memory was not modified.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.registry.canonical import sha256_file
from breedlab.registry.safety import pickle_reason

# Set before transformers/huggingface_hub are imported (they read it once);
# loads also pass local_files_only=True for when someone imported them first.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Files from_pretrained may read: an unlisted one in a frozen folder could
# change what gets loaded even though every listed file hashes correctly.
LOADABLE_SUFFIXES = frozenset({".safetensors", ".json", ".jinja", ".txt", ".model"})
# Load-time options that transformers copies into tokenizer_config.json on
# save; they describe how a tokenizer was loaded once, not the tokenizer.
LOAD_ONLY_TOKENIZER_KEYS = ("is_local", "local_files_only", "name_or_path")


class UnsafeModelFile(Exception):
    """A model folder holds a file that could execute code when loaded."""


class FrozenModelTampered(Exception):
    """A file of a frozen model no longer matches its recorded sha256."""


def refuse_pickles(directory: Path | str) -> None:
    """Raise UnsafeModelFile if any file under ``directory`` is pickle-based.

    Checks extensions and the first bytes of every file (so a pickle renamed to
    ``.safetensors`` or ``.json`` is caught). Nothing is ever unpickled.
    """
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        reason = pickle_reason(path)
        if reason is not None:
            raise UnsafeModelFile(
                f"refusing to load {path}: {reason}. The file was NOT unpickled. "
                "breedlab only loads safetensors weights; convert the checkpoint "
                "to safetensors (save_pretrained in transformers 5 writes them) "
                "and remove the pickle file."
            )


def verify_files(directory: Path | str, expected_files: dict[str, str]) -> None:
    """Raise FrozenModelTampered unless every listed file has its recorded sha256.

    Also refuses unlisted files that from_pretrained could read (see
    LOADABLE_SUFFIXES), since those could change the model without touching a
    listed file.
    """
    root = Path(directory)
    for name, expected in sorted(expected_files.items()):
        path = root / name
        if not path.is_file():
            raise FrozenModelTampered(f"frozen model file {name!r} is missing from {root}")
        actual = sha256_file(path)
        if actual != expected:
            raise FrozenModelTampered(
                f"frozen model file {name!r} in {root} was modified: "
                f"sha256 {actual} does not match the recorded {expected}"
            )
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name not in expected_files and path.suffix in LOADABLE_SUFFIXES:
            raise FrozenModelTampered(f"unrecorded file {name!r} was added to frozen model {root}")


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path | str) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` as safetensors + JSON.

    transformers 5 removed ``safe_serialization`` (safetensors is the only
    format ``save_pretrained`` writes); the check afterwards makes sure of it.
    Load-time options are dropped from the tokenizer's saved config so that a
    child saved with its parent's tokenizer writes the same tokenizer files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    for key in LOAD_ONLY_TOKENIZER_KEYS:
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(directory)
    refuse_pickles(directory)
    if not any(directory.glob("*.safetensors")):
        raise UnsafeModelFile(f"save_pretrained wrote no safetensors weights into {directory}")
    return directory


def load_model(
    directory: Path | str, *, expected_files: dict[str, str] | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM (float32, eval mode) and its tokenizer from a local folder.

    ``expected_files`` maps relative file names to sha256; when given, every
    file is re-hashed first (how the frozen parent is checked at every load).
    The files are hashed, then read again by from_pretrained: this guards
    against accidents and stale copies, not against a concurrent writer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # breedlab shows its own progress; a 0.1 s bar is noise
    directory = Path(directory)
    refuse_pickles(directory)
    if expected_files is not None:
        verify_files(directory, expected_files)
    if (directory / "config.json").is_file() and not any(directory.glob("*.safetensors")):
        raise FileNotFoundError(f"{directory} has no weights: a registry gc collected them "
                                "(`breedlab registry show ID`); breeding the same recipe again restores them")
    model = AutoModelForCausalLM.from_pretrained(
        directory,
        use_safetensors=True,
        dtype=torch.float32,
        local_files_only=True,
        trust_remote_code=False,
    )
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    return model, tokenizer


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor (any dtype, bfloat16 included) without pickling."""
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the state dict: names (sorted), dtype, shape and bytes of each tensor.

    Two models with the same digest compute the same function; breeding
    compares the parent's digest before and after to prove it is unchanged.
    """
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name]
        header = f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0"
        digest.update(header.encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def _embedding_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Input and output embedding matrices, once each (tied ones are one object)."""
    found: dict[int, torch.nn.Parameter] = {}
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        if module is not None:
            for param in module.parameters():
                found[id(param)] = param
    return list(found.values())


def count_parameters(model: torch.nn.Module, include_embeddings: bool = True) -> int:
    """Number of parameters; shared (tied) tensors are counted once.

    ``include_embeddings=False`` leaves out the token embedding and the LM
    head, the usual "non-embedding" size used to compare small models.
    """
    # model.parameters() already yields a tied parameter only once.
    total = sum(p.numel() for p in model.parameters())
    if include_embeddings:
        return total
    return total - sum(p.numel() for p in _embedding_parameters(model))
