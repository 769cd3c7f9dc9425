"""Loading open_clip backbones from local checkpoints, and refusing bad ones."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from tests.tiny_models import TINY_ARCH, register_tiny_openclip, tiny_openclip_model
from vgem.backbones import load_backbone, parse_backbone_name
from vgem.errors import PluginError, WeightsError


@pytest.fixture
def tiny_state():
    register_tiny_openclip()
    return tiny_openclip_model(seed=3).state_dict()


def _load(path):
    return load_backbone(f"openclip:{TINY_ARCH}", weights=str(path))


def _same_weights(adapter, state):
    loaded = adapter.module.state_dict()
    return all(torch.equal(loaded[key], value) for key, value in state.items())


def test_plain_state_dict(tmp_path, tiny_state):
    torch.save(tiny_state, tmp_path / "plain.pt")
    adapter = _load(tmp_path / "plain.pt")
    assert _same_weights(adapter, tiny_state)
    assert adapter.weights_source.endswith("plain.pt")
    assert adapter.preprocessing.input_size == 448


def test_open_clip_training_checkpoint_with_ddp_prefix(tmp_path, tiny_state):
    checkpoint = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in tiny_state.items()}}
    torch.save(checkpoint, tmp_path / "epoch_3.pt")
    assert _same_weights(_load(tmp_path / "epoch_3.pt"), tiny_state)


def test_safetensors(tmp_path, tiny_state):
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, tmp_path / "w.safetensors")
    assert _same_weights(_load(tmp_path / "w.safetensors"), tiny_state)


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_state):
    broken = dict(tiny_state)
    del broken["visual.proj"]
    broken["visual.extra_head"] = torch.zeros(2)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match=r"1 missing key \(visual.proj\).*1 unexpected key"):
        _load(tmp_path / "broken.pt")


def test_wrong_shape_is_named(tmp_path, tiny_state):
    broken = dict(tiny_state)
    broken["visual.proj"] = torch.zeros(3, 3)
    torch.save(broken, tmp_path / "shape.pt")
    with pytest.raises(
        WeightsError, match=r"visual.proj is \[3, 3\] in the file but the model needs \[32, 16\]"
    ):
        _load(tmp_path / "shape.pt")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, tiny_state):
    marker = tmp_path / "payload-ran"
    with (tmp_path / "evil.pt").open("wb") as handle:
        pickle.dump({"state_dict": tiny_state, "hook": _Payload(marker)}, handle)
    with pytest.raises(WeightsError, match="would run code"):
        _load(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"", "empty"),
        (b"this is a text file, not weights\n", "neither a PyTorch checkpoint nor"),
        (b"PK\x03\x04truncated zip", "could not be read as a PyTorch checkpoint"),
    ],
)
def test_missing_or_corrupt_files(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        _load(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(WeightsError, match="is a directory"):
        _load(tmp_path)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("clip-b16", ("clip-b16", None)),
        ("openclip:ViT-B-16@laion2b_s34b_b88k", ("openclip", "ViT-B-16@laion2b_s34b_b88k")),
        (" viclip-b16 ", ("viclip-b16", None)),
    ],
)
def test_backbone_names(name, parsed):
    assert parse_backbone_name(name) == parsed


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("clip-b16:extra", "takes no variant"),
        ("openclip", "needs a variant"),
        ("openclip:NoSuchArch@x", "no model architecture 'NoSuchArch'"),
        ("openclip:ViT-B-16@no-such-tag", "no pretrained weights 'no-such-tag'"),
        ("nonexistent", "Unknown backbone 'nonexistent'"),
        (f"openclip:{TINY_ARCH}", "Say which weights"),
    ],
)
def test_bad_backbone_names(name, message):
    register_tiny_openclip()
    with pytest.raises(PluginError, match=message):
        load_backbone(name)
