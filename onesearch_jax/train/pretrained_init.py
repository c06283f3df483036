"""Initialising the `minilm` encoder from the pretrained all-MiniLM-L6-v2 weights.

Only fresh runs use this (a resumed run restores its checkpoint). The encoder's word-embedding
table spans the whole model vocabulary: rows of text tokens are copied from MiniLM through
`minilm_tokenizer.pretrained_rows`, rows of SID tokens keep their fresh N(0, 0.02) init. Every
other encoder weight is MiniLM's; the decoder stays as initialised.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from onesearch_jax.data.minilm_tokenizer import pretrained_rows
from onesearch_jax.model.presets import MINILM_L6
from onesearch_jax.model.minilm import MiniLMEncoder, load_minilm_params


def _check_architecture(hf_config: dict) -> None:
    installed = MiniLMEncoder.from_hf_config(hf_config)
    wrong = {k: (getattr(installed, k), v) for k, v in MINILM_L6.items()
             if getattr(installed, k) != v}
    if wrong:
        raise ValueError(f"installed MiniLM weights do not match MINILM_L6 "
                         f"(key: (installed, expected)): {wrong}")


def init_from_minilm(params: dict, tokenizer) -> dict:
    """`params` of an EncoderDecoder with encoder='minilm' -> the same tree, encoder pretrained."""
    if "encoder" not in params:
        raise ValueError("params have no 'encoder' subtree: the model is not model.encoder='minilm'")
    hf_config, loaded = load_minilm_params()
    _check_architecture(hf_config)
    pretrained = jax.tree.map(np.asarray, loaded["params"])
    ours = params["encoder"]
    rows = pretrained_rows(tokenizer)
    # The fresh table may be sharded across hosts (FSDP/tensor): every process gathers it whole.
    table = np.array(multihost_utils.process_allgather(
        ours["embeddings"]["word_embeddings"]["embedding"], tiled=True))
    if len(rows) > len(table):
        raise ValueError(f"the tokenizer has {len(rows)} tokens but the encoder's table only "
                         f"{len(table)} rows")
    table[:len(rows)] = pretrained["embeddings"]["word_embeddings"]["embedding"][rows]
    pretrained["embeddings"]["word_embeddings"]["embedding"] = table

    def check(path, a, b):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"encoder param {jax.tree_util.keystr(path)}: model shape "
                             f"{np.shape(a)}, MiniLM shape {np.shape(b)}")
        return np.asarray(b, dtype=a.dtype)

    if jax.tree.structure(ours) != jax.tree.structure(pretrained):
        raise ValueError("the model's encoder tree differs from MiniLM's converted weights")
    return {**params, "encoder": jax.tree_util.tree_map_with_path(check, ours, pretrained)}


def pretrained_init(model_config, tokenizer) -> Callable[[dict], dict] | None:
    """The fresh-params hook for a model config: None for a scratch encoder."""
    if model_config.encoder != "minilm":
        return None
    if tokenizer is None:
        raise ValueError("model.encoder='minilm' needs the run's tokenizer to map MiniLM's rows")
    pretrained_rows(tokenizer)  # refuse a non-MiniLM tokenizer before any training starts
    return lambda params: init_from_minilm(params, tokenizer)
