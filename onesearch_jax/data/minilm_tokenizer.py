"""MiniLM's WordPiece tokenizer with this project's fixed special-token ids.

The `minilm` model preset reads queries with the pretrained encoder's own word pieces, so the
tokenizer must be MiniLM's. The rest of the code relies on fixed ids ([PAD]=0, [UNK]=1, [BOS]=2,
[EOS]=3, [SEP]=4, [MASK]=5, then the task tokens; see `text_tokenizer`). BERT reserves
'[unusedK]' slots for exactly this, so the vocabulary is re-labelled in place, never grown:

- [UNK], [SEP], [MASK] swap ids with the [unused] slot that holds 1, 4, 5 (100, 102, 103 <-> 1,
  4, 5);
- [BOS], [EOS] and the task tokens take the remaining [unused] slots from id 2 on.

So the vocabulary keeps BERT's 30,522 ids and `pretrained_rows` says, for each of our ids,
which row of MiniLM's word-embedding table it is (the swaps above, identity elsewhere).
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from onesearch_jax.data import text_tokenizer
from onesearch_jax.model.minilm import minilm_model_dir


def _bert_tokenizer_json() -> dict:
    return json.loads((minilm_model_dir() / "tokenizer.json").read_text())


def minilm_text_tokenizer(extra_special_tokens: Sequence[str] = ()) -> Tokenizer:
    """MiniLM's WordPiece tokenizer, special tokens at the ids `text_tokenizer` fixes."""
    spec = _bert_tokenizer_json()
    vocab: dict[str, int] = spec["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    specials = list(text_tokenizer.BASE_SPECIAL_TOKENS) + list(extra_special_tokens)
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens repeat: {specials}")
    for want_id, token in enumerate(specials):
        if by_id.get(want_id) == token:
            continue
        displaced = by_id[want_id]
        if not displaced.startswith("[unused"):
            raise ValueError(f"id {want_id} holds {displaced!r}, not an [unused] slot; "
                             f"cannot place {token!r} there")
        if token in vocab:  # a BERT special token ([UNK], [SEP], [MASK]): swap the two ids
            old_id = vocab[token]
            vocab[displaced], by_id[old_id] = old_id, displaced
        else:
            del vocab[displaced]
        vocab[token], by_id[want_id] = want_id, token
    spec["added_tokens"] = [
        dict(id=vocab[t], content=t, special=True, single_word=False, lstrip=False,
             rstrip=False, normalized=False)
        for t in sorted(set(specials) | {"[CLS]"}, key=vocab.__getitem__)]
    for entry in spec["post_processor"]["special_tokens"].values():
        entry["ids"] = [vocab[t] for t in entry["tokens"]]
    spec["truncation"] = spec["padding"] = None  # callers pad and truncate (encode_texts)
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    for want_id, token in enumerate(specials):
        if tokenizer.token_to_id(token) != want_id:
            raise AssertionError(f"{token!r} got id {tokenizer.token_to_id(token)}, not {want_id}")
    return tokenizer


def pretrained_rows(tokenizer: Tokenizer, min_coverage: float = 0.9) -> np.ndarray:
    """int[vocab]: for each id of `tokenizer`, the row of MiniLM's word embeddings to copy.

    Tokens BERT knows take their own row; tokens it does not know (our [BOS], [EOS], task
    tokens) take the row of the [unused] slot they replaced, i.e. the same id. Refuses a
    tokenizer that is not MiniLM's (e.g. the BPE one), where rows would be meaningless.
    """
    bert = _bert_tokenizer_json()["model"]["vocab"]
    ours = tokenizer.get_vocab()
    size = tokenizer.get_vocab_size()
    rows = np.arange(size)
    known = 0
    for token, i in ours.items():
        if token in bert:
            rows[i] = bert[token]
            known += 1
    if size > len(bert) or known < min_coverage * size:
        raise ValueError(
            f"the tokenizer is not MiniLM's WordPiece ({known} of its {size} tokens are in "
            f"MiniLM's vocabulary): a MiniLM encoder needs the data prepared with "
            f"tokenizer='minilm'")
    return rows
