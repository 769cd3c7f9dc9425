"""Fixtures: a tiny open_clip model, its transformers twin, a save_pretrained folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hf_twins import PREPROCESSOR, TINY_ARCH, TINY_CONFIG, Twins, open_clip_model
from openclip_to_hf import convert, hf_tokenizer


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clip-bpe")


@pytest.fixture(scope="session")
def tiny(tokenizer_folder) -> Twins:
    model = open_clip_model(TINY_ARCH, TINY_CONFIG, seed=0)
    return Twins(TINY_ARCH, model, convert(model), hf_tokenizer(tokenizer_folder))


@pytest.fixture(scope="session")
def saved_folder(tiny: Twins, tmp_path_factory) -> Path:
    """What a user gets from ``model.save_pretrained(F)`` and ``tokenizer.save_pretrained(F)``."""
    folder = tmp_path_factory.mktemp("saved-clip")
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return folder
