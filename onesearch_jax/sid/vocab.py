"""One vocabulary for the seq2seq model: text tokens first, then one token range per SID level.

Level l's code c is token `offsets[l] + c`. Ranges never overlap, so the decoder can tell the
SID position from the token alone and beam search scores each level over its own range.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SidVocab:
    text_vocab_size: int
    level_sizes: tuple[int, ...]

    def __post_init__(self):
        if self.text_vocab_size <= 0 or not self.level_sizes or min(self.level_sizes) <= 0:
            raise ValueError(f"bad SID vocabulary: text_vocab_size={self.text_vocab_size}, "
                             f"level_sizes={self.level_sizes}")
        object.__setattr__(self, "level_sizes", tuple(int(s) for s in self.level_sizes))

    @classmethod
    def for_total(cls, vocab_size: int, level_sizes) -> "SidVocab":
        """The layout of a model's vocabulary of `vocab_size` ids whose last ones are the SID
        levels' (a trained config knows only the total)."""
        sizes = tuple(int(s) for s in level_sizes)
        text = int(vocab_size) - sum(sizes)
        if text <= 0:
            raise ValueError(f"vocab_size {vocab_size} leaves no text tokens for SID levels "
                             f"{sizes}")
        return cls(text, sizes)

    @property
    def level_offsets(self) -> tuple[int, ...]:
        return tuple(int(o) for o in self.text_vocab_size + np.cumsum((0,) + self.level_sizes[:-1]))

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def vocab_size(self) -> int:
        return self.text_vocab_size + sum(self.level_sizes)

    def to_tokens(self, codes: np.ndarray) -> np.ndarray:
        """Level-local codes int[..., L] -> vocabulary ids int32[..., L]."""
        codes = np.asarray(codes)
        if codes.shape[-1] != self.num_levels:
            raise ValueError(f"codes have {codes.shape[-1]} levels, vocabulary has {self.num_levels}")
        if (codes < 0).any() or (codes >= np.asarray(self.level_sizes)).any():
            raise ValueError(f"codes out of range for level sizes {self.level_sizes}")
        return (codes + np.asarray(self.level_offsets)).astype(np.int32)

    def to_codes(self, tokens: np.ndarray) -> np.ndarray:
        """Vocabulary ids int[..., L] -> level-local codes (ValueError if a token is off-level)."""
        codes = np.asarray(tokens) - np.asarray(self.level_offsets)
        if (codes < 0).any() or (codes >= np.asarray(self.level_sizes)).any():
            raise ValueError("tokens are not SID tokens of their levels")
        return codes.astype(np.int32)
