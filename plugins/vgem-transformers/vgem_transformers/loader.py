"""Finding and reading a Hugging Face CLIP checkpoint, safely and offline-aware.

``hf-clip:VARIANT`` names either a folder written by ``save_pretrained`` or a
hub repository id, read from the Hugging Face cache (downloaded when online,
HF_HOME and HF_HUB_OFFLINE respected). Weights come from safetensors; a
legacy ``pytorch_model.bin`` is read with vgem's weights-only reader, so a
pickle that would run code is refused, never executed. Only the ``CLIPModel``
class is ever built: no ``trust_remote_code``, no auto-class that could pick
code named by the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, HubFile
from vgem.backbones.openclip import GEM_INPUT_SIZE
from vgem.errors import PluginError, WeightsError

if TYPE_CHECKING:
    from torch import nn

    from vgem_transformers.adapter import HfClipAdapter

FAMILY = "hf-clip"
SAFETENSORS_PATTERNS = ("model.safetensors", "model-*.safetensors")
LEGACY_WEIGHTS = "pytorch_model.bin"
# What a CLIPModel needs from a repository: never other frameworks' weights,
# never the open_clip copies some repositories carry beside the HF ones.
HUB_PATTERNS = (
    "config.json",
    *SAFETENSORS_PATTERNS,
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "preprocessor_config.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def load_hf_clip(
    variant: str | None, weights: str | None = None, *, input_size: int = GEM_INPUT_SIZE
) -> HfClipAdapter:
    """The adapter for ``hf-clip:variant``.

    ``weights``: a ``save_pretrained`` folder that replaces ``variant``'s, or
    one checkpoint file (safetensors or ``.bin``) whose tensors replace its
    weights while the config and tokenizer still come from ``variant``.
    """
    from vgem_transformers.adapter import HfClipAdapter

    if not variant:
        raise PluginError(
            f"Give a Hugging Face CLIP model as {FAMILY}:REPO or {FAMILY}:FOLDER, "
            f"e.g. {FAMILY}:openai/clip-vit-base-patch16."
        )
    name = f"{FAMILY}:{variant}"
    weights_file = None
    if weights is not None and Path(weights).expanduser().is_dir():
        folder, source = Path(weights).expanduser(), str(weights)
    else:
        folder, source = resolve(variant)
        if weights is not None:
            weights_file, source = Path(weights).expanduser(), str(weights)
    _require_clip_config(folder, name)
    model = load_model(folder, name, weights_file)
    tokenizer = load_tokenizer(folder, name)
    mean, std = read_normalization(folder)
    return HfClipAdapter(
        model,
        tokenizer,
        name=name,
        weights_source=source,
        input_size=input_size,
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------- where


def looks_like_repo_id(variant: str) -> bool:
    """``org/name`` (or a bare ``name``), not a path someone meant as a folder."""
    return (
        not variant.startswith((".", "/", "~"))
        and variant.count("/") <= 1
        and "\\" not in variant
        and bool(variant.strip("/"))
    )


def resolve(variant: str) -> tuple[Path, str]:
    """The local folder holding ``variant``'s files, and how results should name it."""
    path = Path(variant).expanduser()
    if path.is_dir():
        return path, str(path)
    if path.exists():
        raise WeightsError(
            f"{FAMILY}:{variant} is a file; give the folder that save_pretrained wrote "
            "(config.json, model.safetensors and the tokenizer files)."
        )
    if not looks_like_repo_id(variant):
        raise WeightsError(
            f"No folder {path}: {FAMILY} takes a Hugging Face repository id (org/name) or a "
            "folder written by save_pretrained."
        )
    folder = snapshot(variant, HUB_PATTERNS)
    if not any(any(folder.glob(pattern)) for pattern in SAFETENSORS_PATTERNS):
        folder = snapshot(variant, (LEGACY_WEIGHTS,))
    return folder, f"hf-hub:{variant}"


def snapshot(repo_id: str, patterns: tuple[str, ...]) -> Path:
    """The cached snapshot of ``repo_id`` (downloading ``patterns`` when allowed).

    "Offline and not cached" must not read like "no such model", or a user
    fixes the wrong thing; each failure is one sentence saying what to do.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from vgem.checkpoints import hub_offline

    fetch = (
        f"run `vgem fetch --backbone {FAMILY}:{repo_id}` (or `hf download {repo_id}`) where "
        f"there is network, or use {FAMILY}:FOLDER with a folder written by save_pretrained"
    )
    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(patterns)))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
        raise WeightsError(
            f"{FAMILY}:{repo_id} is not in the Hugging Face cache and {reason}: {fetch}."
        ) from error
    except GatedRepoError as error:
        raise WeightsError(
            f"The hub repository {repo_id} is gated: accept its terms at "
            f"https://huggingface.co/{repo_id} and log in (`hf auth login`)."
        ) from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise WeightsError(
            f"The hub repository {repo_id} does not exist or is private; check the name."
        ) from error
    except HfHubHTTPError as error:
        raise WeightsError(f"Downloading {repo_id} failed: {_one_line(error)}") from error


def hub_files(variant: str | None) -> list[HubFile]:
    """What ``vgem fetch`` downloads for ``hf-clip:REPO`` (nothing for a folder).

    Only files every CLIP repository has: ``vgem fetch`` treats each as
    required. The tokenizer loads from ``vocab.json`` and ``merges.txt``.
    """
    if not variant or Path(variant).expanduser().exists() or not looks_like_repo_id(variant):
        return []
    names = (
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "preprocessor_config.json",
    )
    return [HubFile(variant, name) for name in names]


# --------------------------------------------------------------------------- what


def _require_clip_config(folder: Path, name: str) -> None:
    config = folder / "config.json"
    if not config.is_file():
        raise WeightsError(
            f"{folder} has no config.json: {name} needs a folder written by "
            "CLIPModel.save_pretrained."
        )
    model_type = _read_json(config).get("model_type")
    if model_type != "clip":
        raise WeightsError(
            f"{folder} holds a '{model_type}' model; {FAMILY} reads CLIPModel checkpoints "
            "(model_type 'clip')."
        )


def load_model(folder: Path, name: str, weights_file: Path | None = None) -> nn.Module:
    """A float32 ``CLIPModel`` in eval mode, from safetensors or a weights-only pickle."""
    from transformers import CLIPModel

    if weights_file is None and any(any(folder.glob(p)) for p in SAFETENSORS_PATTERNS):
        try:
            with _quiet_progress():
                model = CLIPModel.from_pretrained(
                    folder, use_safetensors=True, local_files_only=True
                )
        except (OSError, ValueError) as error:
            raise WeightsError(f"{name}: {folder} could not be read: {_one_line(error)}") from error
        return model.float().eval()
    if weights_file is None:
        weights_file = folder / LEGACY_WEIGHTS
        if not weights_file.is_file():
            raise WeightsError(
                f"{folder} holds no CLIP weights (model.safetensors or {LEGACY_WEIGHTS})."
            )
    return _model_from_file(folder, weights_file, name)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """transformers draws a progress bar while it loads; vgem has its own output."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def _model_from_file(folder: Path, weights_file: Path, name: str) -> nn.Module:
    """``config.json``'s architecture filled from one checkpoint file, read by vgem."""
    from transformers import CLIPConfig, CLIPModel

    from vgem.checkpoints import read_checkpoint, unwrap_state_dict

    state = unwrap_state_dict(
        read_checkpoint(weights_file, safe_alternative="a model.safetensors from save_pretrained"),
        weights_file,
    )
    model = CLIPModel(CLIPConfig.from_pretrained(folder))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Older checkpoints store the position-id buffers that newer releases recompute.
    unexpected = [key for key in unexpected if not key.endswith("position_ids")]
    if missing or unexpected:
        listed = ", ".join([*missing, *unexpected][:5])
        raise WeightsError(
            f"{weights_file} does not fit {name}: {len(missing)} missing and {len(unexpected)} "
            f"unexpected keys ({listed}). Is it a checkpoint of this model?"
        )
    return model.float().eval()


def load_tokenizer(folder: Path, name: str) -> Any:
    """The checkpoint's own CLIP tokenizer (explicit class: no auto-resolved code)."""
    from transformers import CLIPTokenizerFast

    if not any((folder / candidate).is_file() for candidate in TOKENIZER_FILES):
        raise WeightsError(
            f"{folder} has no CLIP tokenizer (tokenizer.json, or vocab.json and merges.txt): "
            f"save the tokenizer with save_pretrained into the same folder for {name}."
        )
    try:
        return CLIPTokenizerFast.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise WeightsError(
            f"{name}: the tokenizer in {folder} could not be read: {_one_line(error)}"
        ) from error


def read_normalization(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The image processor's mean and std; CLIP's own when the folder has none.

    Only these are taken: vgem decodes and resizes frames itself.
    """
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    config = _read_json(path)
    mean, std = config.get("image_mean"), config.get("image_std")
    if not (_three_numbers(mean) and _three_numbers(std)):
        raise WeightsError(f"{path} has no usable image_mean and image_std (three numbers each).")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _three_numbers(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) for v in value)
    )


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path} is not readable JSON: {_one_line(error)}") from error
    if not isinstance(content, dict):
        raise WeightsError(f"{path} is not a JSON object.")
    return content


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
