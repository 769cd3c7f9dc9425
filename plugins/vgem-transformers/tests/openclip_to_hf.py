"""open_clip CLIP → transformers CLIPModel, for tests that compare the two.

Both hold the same OpenAI ViT; only names and two layouts differ: open_clip
fuses q, k, v into one ``in_proj_weight`` ``[3C, C]`` (HF keeps three
``Linear`` layers), and open_clip's projections are matrices applied as
``x @ proj`` (HF's are bias-free ``Linear`` layers, whose weight is the
transpose). Also here: a CLIP tokenizer folder built from the BPE vocabulary
open_clip ships, so HF's tokenizer needs no download.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# HF's names for CLIP's start and end tokens; open_clip spells them differently.
SPECIAL_TOKENS = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
START_ID, END_ID = 49406, 49407


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Make every LayerNorm and attention bias non-trivial.

    PyTorch starts LayerNorms at (1, 0) and open_clip its attention biases at
    0; a conversion that swapped or dropped one would go unnoticed.
    """
    generator = torch.Generator().manual_seed(seed)

    def noise(tensor: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * torch.randn(tensor.shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + noise(module.weight, 0.2))
                module.bias.copy_(noise(module.bias, 0.1))
            if isinstance(module, nn.MultiheadAttention):
                module.in_proj_bias.copy_(noise(module.in_proj_bias, 0.1))
                module.out_proj.bias.copy_(noise(module.out_proj.bias, 0.1))
    return model.eval()


def _tower_shape(blocks: nn.ModuleList) -> dict:
    first = blocks[0]
    activation = "quick_gelu" if type(first.mlp.gelu).__name__ == "QuickGELU" else "gelu"
    return {
        "num_hidden_layers": len(blocks),
        "num_attention_heads": first.attn.num_heads,
        "intermediate_size": first.mlp.c_fc.out_features,
        "hidden_act": activation,
        "layer_norm_eps": first.ln_1.eps,
    }


def hf_config(model: nn.Module):
    """The ``CLIPConfig`` describing the same architecture as an open_clip ``CLIP``."""
    from transformers import CLIPConfig

    visual = model.visual
    vision = {
        **_tower_shape(visual.transformer.resblocks),
        "hidden_size": visual.conv1.out_channels,
        "patch_size": visual.patch_size[0],
        "image_size": visual.image_size[0],
    }
    text = {
        **_tower_shape(model.transformer.resblocks),
        "hidden_size": model.token_embedding.embedding_dim,
        "vocab_size": model.token_embedding.num_embeddings,
        "max_position_embeddings": model.positional_embedding.shape[0],
        "bos_token_id": START_ID,
        "eos_token_id": END_ID,
        "pad_token_id": END_ID,
    }
    return CLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=model.text_projection.shape[1],
    )


def _tower_state(source: dict, prefix: str, target: str, layers: int) -> dict:
    state = {}
    for number in range(layers):
        block, layer = f"{prefix}resblocks.{number}.", f"{target}encoder.layers.{number}."
        q_weight, k_weight, v_weight = source[block + "attn.in_proj_weight"].chunk(3)
        q_bias, k_bias, v_bias = source[block + "attn.in_proj_bias"].chunk(3)
        for part, weight, bias in (
            ("q", q_weight, q_bias),
            ("k", k_weight, k_bias),
            ("v", v_weight, v_bias),
        ):
            state[f"{layer}self_attn.{part}_proj.weight"] = weight
            state[f"{layer}self_attn.{part}_proj.bias"] = bias
        renames = {
            "attn.out_proj": "self_attn.out_proj",
            "ln_1": "layer_norm1",
            "ln_2": "layer_norm2",
            "mlp.c_fc": "mlp.fc1",
            "mlp.c_proj": "mlp.fc2",
        }
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                state[f"{layer}{new}.{kind}"] = source[f"{block}{old}.{kind}"]
    return state


def hf_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """open_clip's state dict under HF's names and layouts."""
    source = model.state_dict()
    vision_layers = len(model.visual.transformer.resblocks)
    text_layers = len(model.transformer.resblocks)
    state = {
        "vision_model.embeddings.class_embedding": source["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": source["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": source["visual.positional_embedding"],
        "visual_projection.weight": source["visual.proj"].T,
        "text_model.embeddings.token_embedding.weight": source["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": source["positional_embedding"],
        "text_projection.weight": source["text_projection"].T,
        "logit_scale": source["logit_scale"],
    }
    for open_clip_name, hf_name in (
        ("visual.ln_pre", "vision_model.pre_layrnorm"),
        ("visual.ln_post", "vision_model.post_layernorm"),
        ("ln_final", "text_model.final_layer_norm"),
    ):
        for kind in ("weight", "bias"):
            state[f"{hf_name}.{kind}"] = source[f"{open_clip_name}.{kind}"]
    state.update(_tower_state(source, "visual.transformer.", "vision_model.", vision_layers))
    state.update(_tower_state(source, "transformer.", "text_model.", text_layers))
    return {key: value.detach().clone().contiguous() for key, value in state.items()}


def convert(model: nn.Module) -> nn.Module:
    """A transformers ``CLIPModel`` holding exactly ``model``'s weights."""
    from transformers import CLIPModel

    hf_model = CLIPModel(hf_config(model))
    missing, unexpected = hf_model.load_state_dict(hf_state(model), strict=False)
    assert not unexpected, unexpected
    assert not [key for key in missing if not key.endswith("position_ids")], missing
    return hf_model.eval()


def write_tokenizer_files(folder: Path) -> Path:
    """``vocab.json`` and ``merges.txt`` of CLIP's BPE, from the copy open_clip ships."""
    from open_clip.tokenizer import SimpleTokenizer

    bpe = SimpleTokenizer()
    vocab = {SPECIAL_TOKENS.get(token, token): index for token, index in bpe.encoder.items()}
    assert vocab["<|startoftext|>"] == START_ID and vocab["<|endoftext|>"] == END_ID
    merges = sorted(bpe.bpe_ranks, key=bpe.bpe_ranks.get)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2", *(" ".join(pair) for pair in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def hf_tokenizer(folder: Path):
    from transformers import CLIPTokenizerFast

    return CLIPTokenizerFast.from_pretrained(write_tokenizer_files(folder))
