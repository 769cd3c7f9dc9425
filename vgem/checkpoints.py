"""Reading checkpoint files safely, and fetching them from the Hugging Face hub.

Two promises hold for every backbone: a checkpoint is read either from
safetensors or with ``torch.load(weights_only=True)``, so a pickle that would
run code is refused, never executed; and a failed download says in one
sentence whether the file is missing, gated or simply unreachable offline,
with what to do about it. Every problem ends in one ``WeightsError`` line.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import WeightsError
from vgem.quiet import quieted

if TYPE_CHECKING:
    import torch

_MAX_SAFETENSORS_HEADER = 100_000_000
_LISTED_KEYS = 5
# Globals a plain tensor checkpoint references; anything else means objects.
_TENSOR_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "numpy.")


class MissingHubFile(WeightsError):
    """The hub answered, and the repository has no such file."""


# --------------------------------------------------------------------------- reading


def local_checkpoint(path: str | Path) -> Path:
    """``path`` as an existing, non-empty file, or one clear error."""
    checkpoint_path = Path(path).expanduser()
    if not checkpoint_path.exists():
        raise WeightsError(f"Weights file not found: {checkpoint_path}")
    if checkpoint_path.is_dir():
        raise WeightsError(
            f"`weights` {checkpoint_path} is a directory: give the checkpoint file itself.",
            settings=["weights"],
        )
    if checkpoint_path.stat().st_size == 0:
        raise WeightsError(f"The weights file {checkpoint_path} is empty.")
    return checkpoint_path


def read_checkpoint(path: str | Path, *, safe_alternative: str | None = None) -> Any:
    """The object stored in a safetensors or PyTorch checkpoint, told apart by content.

    ``safe_alternative`` names what to use instead when a pickle is refused
    (e.g. a safetensors release on the hub).
    """
    checkpoint_path = local_checkpoint(path)
    file_format = _sniff_format(checkpoint_path)
    if file_format == "safetensors":
        return _read_safetensors(checkpoint_path)
    return _read_torch_pickle(checkpoint_path, safe_alternative)


def _sniff_format(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head.startswith(b"\x80"):
        return "torch-pickle"
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    header_length = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:9] == b"{" and 0 < header_length < _MAX_SAFETENSORS_HEADER:
        return "safetensors"
    raise WeightsError(f"{path} is neither a PyTorch checkpoint nor a safetensors file.")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"{path} could not be read as safetensors (is it complete?): {_one_line(error)}"
        ) from error


def _read_torch_pickle(path: Path, safe_alternative: str | None) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notices are not for users
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(path, safe_alternative) from error
    except Exception as error:  # any failure to parse an untrusted file means "not usable"
        raise WeightsError(
            f"{path} could not be read as a PyTorch checkpoint (is it complete?): "
            f"{_one_line(error)}"
        ) from error


def _refusal(path: Path, safe_alternative: str | None) -> WeightsError:
    """Why weights-only unpickling stopped, told honestly.

    The pickle is scanned, never run: if it references anything beyond tensor
    storage, loading it in full would run code. Otherwise it is damaged or
    uses pickle features vgem does not read, and is refused without being
    called malicious.
    """
    instead = f" Use {safe_alternative} instead." if safe_alternative else ""
    suspicious = _suspicious_globals(path)
    if suspicious:
        return WeightsError(
            f"Refused to load {path}: its pickle would run code when loaded (it imports "
            f"{', '.join(suspicious[:3])}); vgem only reads plain tensors.{instead}"
        )
    return WeightsError(
        f"{path} could not be read with weights-only unpickling (corrupt, or it needs "
        f"pickle features vgem refuses to run).{instead}"
    )


def _suspicious_globals(path: Path) -> list[str]:
    """Globals outside tensor storage that the pickle references, read without running it.

    Legacy (non-zip) torch files are several pickles in a row, so the scan
    goes on until the stream ends or stops parsing.
    """
    import io
    import pickletools

    stream = io.BytesIO(_pickle_bytes(path) or b"")
    referenced: list[str] = []
    strings: list[str] = []
    try:
        while stream.tell() < len(stream.getbuffer()):
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings.append(str(argument))
                elif opcode.name == "GLOBAL":
                    referenced.append(str(argument).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    referenced.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # malformed opcodes or raw tensor bytes: what was read still counts
        pass
    outside = (name for name in referenced if not name.startswith(_TENSOR_GLOBAL_PREFIXES))
    return list(dict.fromkeys(outside))


def _pickle_bytes(path: Path) -> bytes | None:
    """The pickle stream of a checkpoint: ``data.pkl`` in a torch zip, or the file."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else None
    except (zipfile.BadZipFile, OSError):
        return None


# --------------------------------------------------------------------------- state dicts


def unwrap_state_dict(checkpoint: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors inside common wrappers (``model``, ``state_dict``, DDP's ``module.``)."""
    import torch

    state = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"{path} holds no state dict of tensors.")
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"{path} is not a state dict: {_listing(not_tensors)} are not tensors "
            "(expected a state dict, or one under 'model' or 'state_dict')."
        )
    tensors = dict(state)
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    check_weight_values(tensors, path)
    return tensors


# Integer buffers a model may keep beside its weights (token positions, BatchNorm's count).
_INDEX_BUFFER_SUFFIXES = ("_ids", "num_batches_tracked", "_index", "_indices")


def check_weight_values(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights that are not weights: integer (or boolean, complex) tensors where
    a model has floating-point parameters, and NaN or infinite values.

    A checkpoint of the right keys and shapes can still hold garbage (all
    NaN, or cast to an integer type), which would load and ground nothing but
    noise. Every backbone's state dict passes through :func:`unwrap_state_dict`,
    which calls this, so each checkpoint is checked once, on the CPU, before
    it reaches a model. Only integer buffers named like indices
    (``position_ids``, ``num_batches_tracked``) may be integers.
    """
    import torch

    not_floating = [
        f"{key} ({str(value.dtype).removeprefix('torch.')})"
        for key, value in state.items()
        if not value.is_floating_point() and not (_is_integer(value) and _is_index_key(key))
    ]
    if not_floating:
        raise WeightsError(
            f"{path} does not hold usable weights: {_listing(not_floating)} "
            f"{'is' if len(not_floating) == 1 else 'are'} not floating point."
        )
    not_finite = [
        key
        for key, value in state.items()
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all())
    ]
    if not_finite:
        raise WeightsError(
            f"{path} does not hold usable weights: {_listing(not_finite)} "
            f"{'holds' if len(not_finite) == 1 else 'hold'} NaN or infinite values."
        )


def _is_integer(tensor: torch.Tensor) -> bool:
    import torch

    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def _is_index_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1].endswith(_INDEX_BUFFER_SUFFIXES)


def check_state_dict(
    expected_shapes: Mapping[str, tuple[int, ...]],
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    model: str,
) -> None:
    """Refuse a state dict whose keys or shapes differ from the model's, naming them."""
    missing = [key for key in expected_shapes if key not in state]
    unexpected = [key for key in state if key not in expected_shapes]
    problems = []
    if missing:
        problems.append(f"{_count(missing, 'missing key')} ({_listing(missing)})")
    if unexpected:
        problems.append(f"{_count(unexpected, 'unexpected key')} ({_listing(unexpected)})")
    wrong_shapes = [
        f"{key} is {list(state[key].shape)} in the file but the model needs {list(shape)}"
        for key, shape in expected_shapes.items()
        if key in state and tuple(state[key].shape) != tuple(shape)
    ]
    if wrong_shapes:
        more = len(wrong_shapes) - _LISTED_KEYS
        suffix = f" (and {more} more)" if more > 0 else ""
        problems.append("; ".join(wrong_shapes[:_LISTED_KEYS]) + suffix)
    if problems:
        raise WeightsError(
            f"{path} does not fit {model}: {'; '.join(problems)}. Is it a checkpoint of this model?"
        )


def _count(keys: list[str], noun: str) -> str:
    return f"{len(keys)} {noun}{'' if len(keys) == 1 else 's'}"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    return shown + (", ..." if len(keys) > _LISTED_KEYS else "")


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


# --------------------------------------------------------------------------- the hub


def hub_download(repo_id: str, filename: str, *, what: str, fetch_hint: str) -> Path:
    """A file from the Hugging Face hub cache, downloading it when allowed.

    ``what`` names the weights in messages ("ViCLIP-B/16"), ``fetch_hint``
    says how to get them onto an offline machine. "Offline and not cached"
    must not read like "no such file", or a user fixes the wrong thing.
    """
    return hub_download_first(repo_id, [filename], what=what, fetch_hint=fetch_hint)


def hub_download_first(
    repo_id: str, filenames: Sequence[str], *, what: str, fetch_hint: str
) -> Path:
    """The first of ``filenames`` the cache holds, else the first the hub has.

    Released weights do not change: a cached copy (under any of the names the
    weights are published as) is used as is, without the hub's freshness
    check, which on a machine without network would retry for half a minute
    before falling back to the very same file. Only then are the names
    downloaded in order of preference.
    """
    for filename in filenames:
        cached = cached_path(repo_id, filename)
        if cached is not None:
            return cached
    if not hub_offline() and not hub_reachable():
        raise _not_cached(what, "the hub cannot be reached", fetch_hint)
    *preferred, last = filenames
    for filename in preferred:
        try:
            return _fetch_from_hub(repo_id, filename, what=what, fetch_hint=fetch_hint)
        except MissingHubFile:
            continue
    return _fetch_from_hub(repo_id, last, what=what, fetch_hint=fetch_hint)


def _hinted(message: str, fetch_hint: str) -> WeightsError:
    """A hub error whose hint may name the `weights` setting (see vgem.errors)."""
    return WeightsError(message, settings=["weights"] if "`weights`" in fetch_hint else [])


def _not_cached(what: str, reason: str, fetch_hint: str) -> WeightsError:
    return _hinted(
        f"{what} weights are not in the Hugging Face cache and {reason}: {fetch_hint}.",
        fetch_hint,
    )


def _fetch_from_hub(repo_id: str, filename: str, *, what: str, fetch_hint: str) -> Path:
    """One file from the hub (or its cache), every failure turned into one clear line."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        # huggingface_hub warns at every retry; the outcome gets one line either way.
        with quieted("huggingface_hub"):
            return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
        raise _not_cached(what, reason, fetch_hint) from error
    except GatedRepoError as error:
        raise _hinted(
            f"The hub repository {repo_id} is gated: accept its terms at "
            f"https://huggingface.co/{repo_id} and log in (`hf auth login`), or {fetch_hint}.",
            fetch_hint,
        ) from error
    except RepositoryNotFoundError as error:
        raise _hinted(
            f"The hub repository {repo_id} does not exist or is private; {fetch_hint}.",
            fetch_hint,
        ) from error
    except EntryNotFoundError as error:
        raise MissingHubFile(f"The hub repository {repo_id} has no file {filename}.") from error
    except HfHubHTTPError as error:
        raise WeightsError(
            f"Downloading {filename} from {repo_id} failed: {_one_line(error)}"
        ) from error


def hub_offline() -> bool:
    from huggingface_hub import constants

    is_offline = getattr(constants, "is_offline_mode", None)
    return bool(is_offline()) if callable(is_offline) else bool(constants.HF_HUB_OFFLINE)


def cached_path(repo_id: str, filename: str) -> Path | None:
    """Where the hub cache holds ``filename`` (no network), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id=repo_id, filename=filename)
    return Path(found) if isinstance(found, str) else None


def is_cached(repo_id: str, filename: str) -> bool:
    """Whether the hub cache already holds ``filename`` (no network)."""
    return cached_path(repo_id, filename) is not None


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable() -> bool:
    """Whether the hub's host name resolves: a machine without network fails
    here at once, where a download would retry with back-off first. Behind a
    proxy the proxy resolves names, so nothing can be concluded and the
    answer is yes."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    host = urlparse(constants.ENDPOINT).hostname
    if not host:
        return True
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True
