"""ViCLIP's text tokenizer: CLIP's byte-pair encoding with a 32-token context.

ViCLIP ships the same BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``) and
cleaning (ftfy, whitespace, lower case) as CLIP, so open_clip's
``SimpleTokenizer`` is reused rather than vendored. Over-long text is cut to
the context with the end-of-text token kept last, as ViCLIP was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from open_clip.tokenizer import SimpleTokenizer

CONTEXT_LENGTH = 32


@lru_cache(maxsize=1)
def _bpe_tokenizer() -> SimpleTokenizer:
    """Built once: reading the merges file takes a noticeable fraction of a second."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=CONTEXT_LENGTH)


def tokenize(texts: Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """Token ids ``[len(texts), context_length]``: start, BPE, end, zero padding."""
    if isinstance(texts, str):
        raise TypeError("tokenize takes a sequence of texts, not a single string")
    return _bpe_tokenizer()(list(texts), context_length=context_length)


def count_tokens(text: str) -> int:
    """Tokens ``text`` takes with its start and end tokens, before truncation."""
    return len(_bpe_tokenizer().encode(text)) + 2
