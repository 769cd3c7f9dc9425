"""Finding, reading and checking ViCLIP weights.

Two release formats exist. The official ``.pth`` files are ``{"model":
state_dict}`` pickles; they are read with ``weights_only=True`` only, never
with full unpickling, because a pickle can run code. The repackaged hub
releases ``OpenGVLab/ViCLIP-B-16-hf`` and ``OpenGVLab/ViCLIP-L-14-hf`` hold
``model.safetensors``, written by ``save_pretrained`` from a ``ViCLIP``
``PreTrainedModel`` whose attributes are ``vision_encoder``, ``text_encoder``
and ``temp``; its keys are therefore the official names without a prefix
(third-party loaders fill that class from the file with zero missing or
unexpected keys, and the hub reports 150M / 428M parameters, the sizes of our
B/16 / L/14 state dicts with ``temp``). Not having read the file's header
ourselves, we also accept
one common prefix in front of every key (``model.``, ``module.``), and a
missing ``temp``, which embeddings never use.

Every problem a user can cause ends in one ``WeightsError`` line.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import HubFile
from vgem.errors import WeightsError

if TYPE_CHECKING:
    import torch

    from vgem.backbones.viclip.model import ViCLIP, ViCLIPConfig

HUB_REPOS: dict[str, str] = {
    "viclip-b16": "OpenGVLab/ViCLIP-B-16-hf",
    "viclip-l14": "OpenGVLab/ViCLIP-L-14-hf",
}
HUB_FILENAME = "model.safetensors"
TEMPORAL_KEY = "vision_encoder.temporal_positional_embedding"
TEMPERATURE_KEY = "temp"
TOP_LEVEL_NAMES = ("vision_encoder.", "text_encoder.")
_LISTED_KEYS = 5
_MAX_HEADER = 100_000_000


def hub_files(name: str) -> list[HubFile]:
    """What ``vgem fetch`` downloads for the named ViCLIP variant."""
    return [HubFile(repo_id=HUB_REPOS[name], filename=HUB_FILENAME)]


def load_model(config: ViCLIPConfig, weights: str | None) -> tuple[ViCLIP, str]:
    """The model with checked weights, and where they came from.

    ``weights`` is a local ``.pth``/``.safetensors`` file; None takes the
    config's hub release from the Hugging Face cache (downloading if allowed).
    The model is built on the meta device and takes the checkpoint's tensors
    as its parameters, so no memory is spent on a random initialisation.
    """
    import torch

    from vgem.backbones.viclip.model import ViCLIP

    if weights is None:
        path = hub_weights_path(config)
        source = f"hf-hub:{HUB_REPOS[config.name]}"
    else:
        path = _checked_local_path(weights)
        source = str(path)
    state = read_checkpoint(path, config)
    with torch.device("meta"):
        model = ViCLIP(config)
    expected_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = fit_state_dict(state, expected_shapes, config, path)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval(), source


def hub_weights_path(config: ViCLIPConfig) -> Path:
    """The hub release's ``model.safetensors`` in the local cache, downloaded if allowed.

    Each hub failure gets its own message: "offline and not cached" must not
    read like "no such file", or a user fixes the wrong thing.
    """
    repo_id = HUB_REPOS.get(config.name)
    if repo_id is None:
        raise WeightsError(
            f"{config.title} has no published weights on the Hugging Face hub: "
            "pass --weights PATH to a ViCLIP checkpoint (.pth or .safetensors)."
        )
    from huggingface_hub import hf_hub_download

    hub_errors = _hub_error_types()
    try:
        return Path(hf_hub_download(repo_id, HUB_FILENAME))
    except hub_errors.LocalEntryNotFoundError as error:
        reason = "HF_HUB_OFFLINE is set" if _hub_offline() else "the hub cannot be reached"
        raise WeightsError(
            f"{config.title} weights are not in the Hugging Face cache and {reason}: "
            f"run `vgem fetch --backbone {config.name}` with network access, or pass "
            "--weights PATH to a local ViCLIP checkpoint (.pth or .safetensors)."
        ) from error
    except hub_errors.GatedRepoError as error:
        raise WeightsError(
            f"The hub repository {repo_id} is gated: accept its terms at "
            f"https://huggingface.co/{repo_id} and log in (`hf auth login`), "
            "or pass --weights PATH."
        ) from error
    except hub_errors.RepositoryNotFoundError as error:
        raise WeightsError(
            f"The hub repository {repo_id} does not exist or is private: "
            "pass --weights PATH to a ViCLIP checkpoint (.pth or .safetensors)."
        ) from error
    except hub_errors.EntryNotFoundError as error:
        raise WeightsError(
            f"The hub repository {repo_id} has no file {HUB_FILENAME}: "
            "pass --weights PATH to a ViCLIP checkpoint (.pth or .safetensors)."
        ) from error
    except hub_errors.HfHubHTTPError as error:
        raise WeightsError(
            f"Downloading {HUB_FILENAME} from {repo_id} failed: {_one_line(str(error))}"
        ) from error


def read_checkpoint(path: Path, config: ViCLIPConfig | None = None) -> dict[str, Any]:
    """The raw mapping stored in ``path``, told apart by content, not by extension."""
    file_format = _sniff_format(path)
    if file_format == "safetensors":
        return _read_safetensors(path)
    return _read_torch_pickle(path, config)


def fit_state_dict(
    state: dict[str, Any],
    expected_shapes: dict[str, tuple[int, ...]],
    config: ViCLIPConfig,
    path: Path,
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our names, checked key by key and shape by shape.

    Unwraps ``{"model": ...}``, strips a shared key prefix, fills a missing
    ``temp``, resizes the temporal embedding to ``config.frames`` and casts
    floating tensors to float32 (the adapter's ``to`` picks the run dtype).
    """
    import torch

    state = _unwrap(state, path)
    state = _strip_shared_prefix(state)
    if TEMPERATURE_KEY not in state and TEMPERATURE_KEY in expected_shapes:
        state[TEMPERATURE_KEY] = torch.full((), 1 / 100)
    temporal = state.get(TEMPORAL_KEY)
    wanted = expected_shapes.get(TEMPORAL_KEY)
    if temporal is not None and wanted is not None and _is_resizable(temporal, wanted):
        from vgem.backbones.viclip.model import resize_temporal_embedding

        state[TEMPORAL_KEY] = resize_temporal_embedding(temporal, wanted[1])
    _check_keys(state, expected_shapes, config, path)
    return {
        key: value.float() if value.is_floating_point() else value for key, value in state.items()
    }


def _checked_local_path(weights: str) -> Path:
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsError(f"ViCLIP weights file not found: {path}")
    if path.is_dir():
        raise WeightsError(
            f"--weights {path} is a directory: pass the checkpoint file itself "
            "(.pth or .safetensors)."
        )
    return path


def _sniff_format(path: Path) -> str:
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"The weights file {path} is empty.")
    with path.open("rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head.startswith(b"\x80"):
        return "torch-pickle"
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < _MAX_HEADER:
        return "safetensors"
    raise WeightsError(
        f"{path} is neither a PyTorch checkpoint nor a safetensors file "
        "(expected a ViCLIP .pth or .safetensors)."
    )


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise WeightsError(
            f"{path} could not be read as safetensors: {_one_line(str(error))}"
        ) from error


def _read_torch_pickle(path: Path, config: ViCLIPConfig | None) -> dict[str, Any]:
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(path, str(error), config) from error
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as error:
        raise WeightsError(
            f"{path} could not be read as a PyTorch checkpoint (is it complete?): "
            f"{_one_line(str(error))}"
        ) from error
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a ViCLIP state dict.")
    return loaded


def _refusal(path: Path, message: str, config: ViCLIPConfig | None) -> WeightsError:
    """Why weights-only unpickling stopped, told honestly.

    PyTorch names a forbidden import as ``GLOBAL module.name``: that file
    would run code if fully unpickled. Anything else is a damaged or unusual
    pickle, which is also refused, but not called malicious.
    """
    if config is not None and config.name in HUB_REPOS:
        alternative = f"{HUB_REPOS[config.name]} (file {HUB_FILENAME})"
    else:
        alternative = f"{' or '.join(HUB_REPOS.values())} (file {HUB_FILENAME})"
    forbidden = re.search(r"GLOBAL\s+([\w.]+)", message)
    if forbidden:
        return WeightsError(
            f"Refused to load {path}: its pickle would run code when loaded "
            f"(it imports {forbidden.group(1)}); vgem only reads plain tensors. "
            f"Use the safetensors release instead: {alternative}."
        )
    return WeightsError(
        f"{path} could not be read with weights-only unpickling (corrupt, or it needs "
        f"pickle features vgem refuses to run); use the safetensors release instead: "
        f"{alternative}."
    )


def _unwrap(state: dict[str, Any], path: Path) -> dict[str, Any]:
    import torch

    inner = state.get("model")
    if isinstance(inner, dict):
        state = inner
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"{path} is not a ViCLIP state dict: {_listing(not_tensors)} "
            "are not tensors (expected {'model': state_dict} or a bare state dict)."
        )
    return dict(state)


def _strip_shared_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Drop a prefix such as ``model.`` that sits in front of every key, if there is one."""
    if any(key.startswith(TOP_LEVEL_NAMES) for key in state):
        return state
    for key in state:
        for name in TOP_LEVEL_NAMES:
            position = key.find("." + name)
            if position < 0:
                continue
            prefix = key[: position + 1]
            if all(other.startswith(prefix) for other in state):
                return {other[len(prefix) :]: value for other, value in state.items()}
            return state
    return state


def _is_resizable(tensor: torch.Tensor, wanted: tuple[int, ...]) -> bool:
    """A ``[1, T, C]`` temporal table whose only difference is the frame count."""
    shape = tuple(tensor.shape)
    return len(shape) == 3 and shape[0] == 1 and shape[2] == wanted[2] and shape[1] != wanted[1]


def _check_keys(
    state: dict[str, Any],
    expected_shapes: dict[str, tuple[int, ...]],
    config: ViCLIPConfig,
    path: Path,
) -> None:
    missing = [key for key in expected_shapes if key not in state]
    unexpected = [key for key in state if key not in expected_shapes]
    problems = []
    if missing:
        problems.append(f"{_count(missing, 'missing key')} ({_listing(missing)})")
    if unexpected:
        problems.append(f"{_count(unexpected, 'unexpected key')} ({_listing(unexpected)})")
    if problems:
        raise WeightsError(
            f"{path} does not fit {config.name}: {'; '.join(problems)}. "
            "Is it a ViCLIP checkpoint of this size?"
        )
    wrong_shapes = [
        f"{key} is {list(state[key].shape)} in the file but the model needs {list(shape)}"
        for key, shape in expected_shapes.items()
        if tuple(state[key].shape) != shape
    ]
    if wrong_shapes:
        shown = "; ".join(wrong_shapes[:_LISTED_KEYS])
        more = (
            f" (and {len(wrong_shapes) - _LISTED_KEYS} more)"
            if len(wrong_shapes) > _LISTED_KEYS
            else ""
        )
        raise WeightsError(
            f"{path} does not fit {config.name}: {shown}{more}. "
            "Is it a ViCLIP checkpoint of this size?"
        )


def _count(keys: list[str], noun: str) -> str:
    return f"{len(keys)} {noun}{'' if len(keys) == 1 else 's'}"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    return shown + (", ..." if len(keys) > _LISTED_KEYS else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _hub_error_types() -> Any:
    """The hub's exception classes, wherever this huggingface_hub version keeps them."""
    try:
        from huggingface_hub import errors
    except ImportError:  # huggingface_hub < 0.23 keeps them in utils
        from huggingface_hub import utils as errors
    return errors


def _hub_offline() -> bool:
    from huggingface_hub import constants

    is_offline = getattr(constants, "is_offline_mode", None)
    return bool(is_offline()) if callable(is_offline) else bool(constants.HF_HUB_OFFLINE)
