"""A tiny random encoder-decoder over a SID vocabulary and a trie of random items: what the
decoding tests search with (the full-prefix decoder vs the KV cache, direct CoT)."""
import flax.linen as nn
import jax
import numpy as np

from onesearch_jax.model import presets
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab


def tiny_decoder(text_vocab: int, level_sizes: tuple, batch: int, *, seed: int, pad_row: int,
                 pad_from: int, items: int):
    """(vocab, model, params, enc [batch, 9], trie); row `pad_row` of enc is padding from
    `pad_from` on, so the cached cross-attention must mask it too."""
    vocab = SidVocab(text_vocab, level_sizes)
    d = presets.get_preset("tiny")
    d.update(vocab_size=vocab.vocab_size, dropout_rate=0.0)
    model = build_model(presets.TransformerConfig(**d))
    rng = np.random.default_rng(seed)
    enc = rng.integers(3, text_vocab, (batch, 9)).astype(np.int32)
    enc[pad_row, pad_from:] = 0
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), enc, enc[:, :5])["params"])
    # Larger init scale so that the model's preferences are sharp and beams well separated.
    params = jax.tree.map(lambda x: 3 * x, params)
    codes = np.stack([rng.integers(0, s, items) for s in level_sizes], axis=1)
    return vocab, model, params, enc, SidTrie.build(codes, level_sizes)
