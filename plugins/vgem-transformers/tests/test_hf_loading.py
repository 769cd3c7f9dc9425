"""Loading hf-clip from save_pretrained folders and the hub cache, and refusing bad input."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import PackageNotFoundError, distribution

import pytest
import torch
from vgem_transformers.loader import hub_files, load_hf_clip

from vgem.errors import PluginError, WeightsError
from vgem.testing import check_loader_refuses_code

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def same_weights(adapter, model) -> bool:
    loaded = adapter.module.state_dict()
    return all(torch.equal(loaded[key], value) for key, value in model.state_dict().items())


def test_a_save_pretrained_folder(tiny, saved_folder):
    adapter = load_hf_clip(str(saved_folder))
    assert same_weights(adapter, tiny.hf)
    assert adapter.name == f"hf-clip:{saved_folder}"
    assert adapter.weights_source == str(saved_folder)
    assert adapter.preprocessing.input_size == 448
    assert adapter.preprocessing.mean == (0.5, 0.4, 0.3)
    assert adapter.preprocessing.std == (0.2, 0.25, 0.3)
    assert adapter.context_length == 77
    torch.testing.assert_close(
        adapter.encode_text(["cut onion"]), tiny.open_clip_text(["cut onion"]), atol=1e-5, rtol=0
    )


def test_without_a_preprocessor_config_clips_own_normalization_is_used(saved_folder, tmp_path):
    from vgem.backbones.base import OPENAI_CLIP_MEAN

    folder = shutil.copytree(saved_folder, tmp_path / "no-processor")
    (folder / "preprocessor_config.json").unlink()
    assert load_hf_clip(str(folder)).preprocessing.mean == OPENAI_CLIP_MEAN


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_repo(cache, repo_id: str, folder) -> None:
    """``folder``'s files as the cached main revision of ``repo_id`` (the hub cache layout)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_a_repo_from_the_hub_cache_offline(tiny, saved_folder, hub_cache):
    cache_repo(hub_cache, "vgem-test/tiny-clip", saved_folder)
    adapter = load_hf_clip("vgem-test/tiny-clip")
    assert same_weights(adapter, tiny.hf)
    assert adapter.weights_source == "hf-hub:vgem-test/tiny-clip"


def test_what_vgem_fetch_downloads_is_enough(
    tiny, saved_folder, tokenizer_folder, hub_cache, tmp_path
):
    """A cache holding exactly hub_files() (no tokenizer.json) loads offline."""
    repo_id = "vgem-test/fetched-clip"
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    for hub_file in hub_files(repo_id):
        source = (
            tokenizer_folder if hub_file.filename in ("vocab.json", "merges.txt") else saved_folder
        )
        shutil.copy(source / hub_file.filename, fetched / hub_file.filename)
    cache_repo(hub_cache, repo_id, fetched)
    adapter = load_hf_clip(repo_id)
    assert same_weights(adapter, tiny.hf)
    torch.testing.assert_close(
        adapter.encode_text(["cut onion"]), tiny.open_clip_text(["cut onion"]), atol=1e-5, rtol=0
    )


def test_offline_and_not_cached_is_one_sentence_saying_what_to_fetch(hub_cache):
    with pytest.raises(WeightsError) as caught:
        load_hf_clip("openai/clip-vit-base-patch16")
    message = str(caught.value)
    assert message == (
        "hf-clip:openai/clip-vit-base-patch16 is not in the Hugging Face cache and "
        "HF_HUB_OFFLINE is set: run `vgem fetch --backbone hf-clip:openai/clip-vit-base-patch16` "
        "(or `hf download openai/clip-vit-base-patch16`) where there is network, or use "
        "hf-clip:FOLDER with a folder written by save_pretrained."
    )


def test_a_legacy_bin_is_read_weights_only(tiny, saved_folder, tmp_path):
    folder = shutil.copytree(saved_folder, tmp_path / "legacy")
    (folder / "model.safetensors").unlink()
    torch.save(tiny.hf.state_dict(), folder / "pytorch_model.bin")
    assert same_weights(load_hf_clip(str(folder)), tiny.hf)


def test_a_code_running_checkpoint_is_refused(saved_folder, tmp_path):
    """Both through --weights FILE and as a folder's pytorch_model.bin."""
    check_loader_refuses_code(lambda path: load_hf_clip(str(saved_folder), str(path)))

    def folder_with(path):
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(saved_folder / name, path.parent / name)
        return load_hf_clip(str(path.parent))

    check_loader_refuses_code(folder_with, filename="pytorch_model.bin")


def test_a_weights_file_replaces_the_variants_tensors(tiny, saved_folder, tmp_path):
    checkpoint = shutil.copy(saved_folder / "model.safetensors", tmp_path / "tuned.safetensors")
    adapter = load_hf_clip(str(saved_folder), str(checkpoint))
    assert same_weights(adapter, tiny.hf)
    assert adapter.weights_source == str(checkpoint)


def test_weights_folder_replaces_the_variant(tiny, saved_folder):
    adapter = load_hf_clip("openai/clip-vit-base-patch16", str(saved_folder))
    assert same_weights(adapter, tiny.hf)
    assert adapter.name == "hf-clip:openai/clip-vit-base-patch16"


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("", "Give a Hugging Face CLIP model as hf-clip:REPO or hf-clip:FOLDER"),
        (
            "./no/such/folder",
            "No folder no/such/folder: hf-clip takes a Hugging Face repository id",
        ),
    ],
)
def test_bad_variants(variant, message):
    with pytest.raises((PluginError, WeightsError), match=message):
        load_hf_clip(variant)


def test_a_file_instead_of_a_folder(saved_folder):
    with pytest.raises(WeightsError, match="is a file; give the folder that save_pretrained"):
        load_hf_clip(str(saved_folder / "config.json"))


def test_a_model_that_is_not_clip(saved_folder, tmp_path):
    folder = shutil.copytree(saved_folder, tmp_path / "bert")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(WeightsError, match="holds a 'bert' model; hf-clip reads CLIPModel"):
        load_hf_clip(str(folder))


def test_a_folder_without_tokenizer(saved_folder, tmp_path):
    folder = shutil.copytree(saved_folder, tmp_path / "no-tokenizer")
    for name in ("tokenizer.json", "vocab.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(WeightsError, match="has no CLIP tokenizer"):
        load_hf_clip(str(folder))


def test_hub_files_name_what_vgem_fetch_downloads(saved_folder):
    names = [file.filename for file in hub_files("openai/clip-vit-base-patch16")]
    assert names[:2] == ["config.json", "model.safetensors"]
    assert hub_files(str(saved_folder)) == []


def _installed() -> bool:
    try:
        distribution("vgem-transformers")
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="the plugin package is not installed")
def test_the_entry_point_loads_the_backbone(tiny, saved_folder):
    from vgem import plugins
    from vgem.backbones import load_backbone

    plugins.refresh()
    adapter = load_backbone(f"hf-clip:{saved_folder}")
    assert same_weights(adapter, tiny.hf)
