"""A subword text tokenizer (BPE, via the `tokenizers` package) for queries, titles and keywords.

Ids are fixed where other code relies on them: [PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3, [SEP]=4,
[MASK]=5, then the caller's task/segment tokens ('[Q]', '[KW]', '[TASK_ITEM]', ...) in the order
given, then the learned subwords. Text is NFKC-normalised and lower-cased; words are marked with a
leading '▁' (SentencePiece's Metaspace, so `decode` restores the spaces) and punctuation is
split off; special tokens written inside a text ("[Q] red drill") are single tokens.

Training is deterministic: the same texts and settings give a byte-identical tokenizer.json. This
is why the model is plain BPE: the WordPiece trainer and BPE with an end-of-word suffix number
their '##x' / 'x</w>' tokens in hash-map order, which changes the learned vocabulary run to run.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence, Union

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from onesearch_jax import fileio

BASE_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, BOS_ID, EOS_ID, SEP_ID, MASK_ID = range(6)
# Special tokens every model input uses; fixed ids right after [PAD] [UNK] [BOS] [EOS] [SEP] [MASK].
TASK_TOKENS = ("[Q]", "[KW]", "[USR]", "[HIST]", "[TITLE]", "[TASK_ITEM]", "[TASK_KW]",
               "[TASK_QSID]", "[TASK_ISID]")


def train_text_tokenizer(texts: Iterable[str], vocab_size: int,
                         extra_special_tokens: Sequence[str] = (),
                         min_frequency: int = 2) -> Tokenizer:
    """Learns a BPE vocabulary of at most `vocab_size` entries (special tokens included).

    Characters never seen in training encode as [UNK]; `min_frequency` applies to merges.
    """
    extra = list(extra_special_tokens)
    for tok in extra:
        if not isinstance(tok, str) or not tok or any(c.isspace() for c in tok):
            raise ValueError(f"special tokens must be non-empty strings without spaces, got {tok!r}")
    specials = list(BASE_SPECIAL_TOKENS) + extra
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens repeat: {specials}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or \
            vocab_size <= len(specials):
        raise ValueError(f"vocab_size must be an integer above the {len(specials)} special "
                         f"tokens, got {vocab_size!r}")
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                                       pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=specials, show_progress=False)

    def checked(stream):
        for i, text in enumerate(stream):
            if not isinstance(text, str):
                raise ValueError(f"text {i} is not a string: {text!r}")
            yield text

    tokenizer.train_from_iterator(checked(texts), trainer=trainer)
    for expected_id, tok in enumerate(specials):
        if tokenizer.token_to_id(tok) != expected_id:
            raise ValueError(f"special token {tok!r} got id {tokenizer.token_to_id(tok)}, "
                             f"expected {expected_id}")
    return tokenizer


def save_text_tokenizer(tokenizer: Tokenizer, path: Union[str, os.PathLike]) -> None:
    """Writes the tokenizer as one tokenizer.json file (creating parent folders)."""
    fileio.write_text(path, tokenizer.to_str(pretty=True))


def load_text_tokenizer(path: Union[str, os.PathLike]) -> Tokenizer:
    """Reads a tokenizer saved by `save_text_tokenizer`."""
    if not fileio.exists(path) or fileio.isdir(path):
        raise FileNotFoundError(f"text tokenizer file not found: {path}")
    tokenizer = Tokenizer.from_str(fileio.read_text(path))
    for expected_id, tok in enumerate(BASE_SPECIAL_TOKENS):
        if tokenizer.token_to_id(tok) != expected_id:
            raise ValueError(f"{path}: {tok!r} must have id {expected_id}, has "
                             f"{tokenizer.token_to_id(tok)}; not a text tokenizer of this project")
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_len: int,
                 add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
    """(B, max_len) int32 token ids, right-padded with [PAD]=0 and truncated to fit.

    With add_bos / add_eos the [BOS] / [EOS] tokens are kept even when the text is truncated.
    """
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string")
    reserved = int(add_bos) + int(add_eos)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= reserved:
        raise ValueError(f"max_len must be an integer above {reserved}, got {max_len!r}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is not a string: {text!r}")
    out = np.full((len(texts), max_len), PAD_ID, dtype=np.int32)
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    for row, enc in enumerate(encodings):
        ids = ([BOS_ID] if add_bos else []) + enc.ids[:max_len - reserved] + \
            ([EOS_ID] if add_eos else [])
        out[row, :len(ids)] = ids
    return out


QUERY_LEN = 24  # tokens a query keeps in every encoder row ([Q] query)


def compact(tokens: np.ndarray, length: int) -> np.ndarray:
    """Moves each row's non-pad tokens to the front (order kept) and cuts to `length`."""
    order = np.argsort(tokens == 0, axis=1, kind="stable")
    out = np.take_along_axis(tokens, order, axis=1)[:, :length]
    if out.shape[1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    return out.astype(np.int32)


def column(token_id: int, n: int) -> np.ndarray:
    return np.full((n, 1), token_id, np.int32)


def query_rows(tokenizer: Tokenizer, texts: Sequence[str], enc_len: int,
               query_len: int = QUERY_LEN) -> np.ndarray:
    """[Q] query: the encoder row of an arbitrary text query, as training writes it (the
    serving input)."""
    q = tokenizer.token_to_id("[Q]")
    if q is None:
        raise ValueError("tokenizer lacks the special token [Q]; rebuild the workdir")
    toks = encode_texts(tokenizer, list(texts), query_len)
    return compact(np.concatenate([column(q, len(toks)), toks], 1), enc_len)
