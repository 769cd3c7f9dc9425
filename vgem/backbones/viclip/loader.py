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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import HubFile
from vgem.checkpoints import (
    check_state_dict,
    hub_download,
    local_checkpoint,
    read_checkpoint,
    unwrap_state_dict,
)
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
        path = local_checkpoint(weights)
        source = str(path)
    state = read_checkpoint(path, safe_alternative=_safe_alternative(config))
    with torch.device("meta"):
        model = ViCLIP(config)
    expected_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = fit_state_dict(state, expected_shapes, config, path)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval(), source


def hub_weights_path(config: ViCLIPConfig) -> Path:
    """The hub release's ``model.safetensors`` in the local cache, downloaded if allowed."""
    repo_id = HUB_REPOS.get(config.name)
    if repo_id is None:
        raise WeightsError(
            f"{config.title} has no published weights on the Hugging Face hub: "
            "give a ViCLIP checkpoint (.pth or .safetensors) as `weights`.",
            settings=["weights"],
        )
    return hub_download(
        repo_id,
        HUB_FILENAME,
        what=config.title,
        fetch_hint=(
            f"fetch them with `vgem fetch` (backbone {config.name}) where there is network, "
            "or give a local ViCLIP checkpoint (.pth or .safetensors) as `weights`"
        ),
    )


def _safe_alternative(config: ViCLIPConfig) -> str:
    repos = [HUB_REPOS[config.name]] if config.name in HUB_REPOS else list(HUB_REPOS.values())
    return f"the safetensors release {' or '.join(repos)} (file {HUB_FILENAME})"


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

    state = _strip_shared_prefix(unwrap_state_dict(state, path))
    if TEMPERATURE_KEY not in state and TEMPERATURE_KEY in expected_shapes:
        state[TEMPERATURE_KEY] = torch.full((), 1 / 100)
    temporal = state.get(TEMPORAL_KEY)
    wanted = expected_shapes.get(TEMPORAL_KEY)
    if temporal is not None and wanted is not None and _is_resizable(temporal, wanted):
        from vgem.backbones.viclip.model import resize_temporal_embedding

        state[TEMPORAL_KEY] = resize_temporal_embedding(temporal, wanted[1])
    check_state_dict(expected_shapes, state, path, config.name)
    return {
        key: value.float() if value.is_floating_point() else value for key, value in state.items()
    }


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
