"""Reading checkpoint files safely, and fetching them from the Hugging Face hub.

Two promises hold for every backbone: a checkpoint is read either from
safetensors or with ``torch.load(weights_only=True)``, so a pickle that would
run code is refused, never executed; and a failed download says in one
sentence whether the file is missing, gated or simply unreachable offline,
with what to do about it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import WeightsError

if TYPE_CHECKING:
    import torch

SAFETENSORS_MAGIC_MAX_HEADER = 100_000_000


class MissingHubFile(WeightsError):
    """The hub answered, and the repository has no such file."""


def read_checkpoint(path: str | Path, *, safe_alternative: str | None = None) -> Any:
    """The object stored in a ``.safetensors`` or PyTorch checkpoint file.

    ``safe_alternative`` names what to use instead when a pickle is refused
    (e.g. a safetensors release on the hub).
    """
    import torch

    checkpoint_path = Path(path).expanduser()
    if not checkpoint_path.exists():
        raise WeightsError(f"Weights file not found: {checkpoint_path}")
    if checkpoint_path.is_dir():
        raise WeightsError(f"Weights path is a directory, not a checkpoint file: {checkpoint_path}")
    if checkpoint_path.stat().st_size == 0:
        raise WeightsError(f"Weights file is empty: {checkpoint_path}")
    if _looks_like_safetensors(checkpoint_path):
        return _read_safetensors(checkpoint_path)
    try:
        return torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error) and "Unsupported global" not in str(error):
            raise WeightsError(
                f"Weights file {checkpoint_path} is not a readable PyTorch checkpoint ({error})."
            ) from error
        instead = f" Use {safe_alternative} instead." if safe_alternative else ""
        raise WeightsError(
            f"Refused to load {checkpoint_path}: its pickle would run code, and vgem only "
            f"loads checkpoints that hold plain tensors.{instead}"
        ) from error
    except Exception as error:  # any parse failure of an untrusted file means "not usable"
        raise WeightsError(
            f"Weights file {checkpoint_path} is corrupt or not a PyTorch/safetensors "
            f"checkpoint ({_first_line(error)})."
        ) from error


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors files start with a little-endian header length, then '{'."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 0 < header_length < SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"Weights file {path} is a corrupt safetensors file ({_first_line(error)})."
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def unwrap_state_dict(checkpoint: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside common wrappers (``model``, ``state_dict``, DDP's
    ``module.`` prefix)."""
    import torch

    state = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"Weights file {path} holds no state dict of tensors.")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"Weights file {path} holds no tensors.")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


def check_state_dict(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], path: str | Path
) -> None:
    """Refuse a state dict whose keys or shapes differ from the model's."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    if problems:
        raise WeightsError(f"Weights file {path} does not fit the model: {'; '.join(problems)}.")
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"Weights file {path} does not fit the model: {key} has shape "
                f"{tuple(found[key].shape)}, the model expects {tuple(tensor.shape)}."
            )


def _some(keys: list[str], shown: int = 3) -> str:
    listed = ", ".join(keys[:shown])
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} key{'s' if len(keys) != 1 else ''} ({listed}{more})"


def hub_download(repo_id: str, filename: str, *, what: str, fetch_hint: str) -> Path:
    """A file from the Hugging Face hub cache, downloading it when allowed.

    ``what`` names the weights in messages ("OpenCLIP ViT-B-16 laion2b…"),
    ``fetch_hint`` says how to get them onto an offline machine.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except GatedRepoError as error:
        raise WeightsError(
            f"{what}: https://huggingface.co/{repo_id} is gated; accept its terms there and "
            f"log in (`hf auth login`), or {fetch_hint}."
        ) from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        raise WeightsError(
            f"{what} weights ({repo_id}/{filename}) are not in the Hugging Face cache and the "
            f"hub cannot be reached: {fetch_hint}."
        ) from error
    except RepositoryNotFoundError as error:
        raise WeightsError(f"{what}: no repository {repo_id} on the Hugging Face hub.") from error
    except EntryNotFoundError as error:
        raise MissingHubFile(
            f"{what}: {repo_id} on the Hugging Face hub has no {filename}."
        ) from error
