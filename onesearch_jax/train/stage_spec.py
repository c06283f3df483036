"""A training stage as one object: how its jitted step is made, the batch it takes (keys, shapes,
dtypes) and the config sections it reads. Training checks its first batch against the spec, the
AOT compile lowers the step against the spec's abstract batch, and the tests read both; the
pipeline's registry (pipeline/stages.py) adds each stage's runner.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.data import encoder_memory
from onesearch_jax.model.presets import FROZEN_STATE_DIM
from onesearch_jax.model.transformer import PAD_ID
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train import distill, rl, sft_step

# A dimension of None is free: the batch axis always (each process feeds its own rows), and
# e.g. the number of logged targets of an RL prompt.
Shape = tuple
BatchShapes = dict  # key -> (shape, numpy dtype)

SFT_SECTIONS = ("model", "data", "train", "eval", "mesh")
NUM_TARGETS = 10  # logged targets per RL prompt in an abstract batch (the AOT compile)


class UpTo(int):
    """A dimension of at most this size (the memory slots of data.mem_width='stage' batches);
    an abstract batch takes the full size."""


def _encoder(config) -> tuple[int, dict]:
    """Encoder row length and, for a frozen_minilm model, its MiniLM states' entry."""
    enc = int(config.data.enc_len)
    if config.model.get("encoder", "scratch") != "frozen_minilm":
        return enc, {}
    enc = int(config.data.get("mem_len", 0) or enc)  # memory slots (data/encoder_memory.py)
    if encoder_memory.check_mem_width(config) == "stage":
        enc = UpTo(enc)
    return enc, {"enc_states": ((None, enc, FROZEN_STATE_DIM), np.float32)}


def _sft_shapes(config, vocab: SidVocab) -> BatchShapes:
    del vocab
    enc, states = _encoder(config)
    dec = int(config.data.dec_len)
    return {"enc_tokens": ((None, enc), np.int32), "dec_inputs": ((None, dec), np.int32),
            "dec_targets": ((None, dec), np.int32), "dec_weights": ((None, dec), np.float32),
            **states}


def _distill_shapes(config, vocab: SidVocab) -> BatchShapes:
    out = _sft_shapes(config, vocab)
    enc, states = _encoder(config)
    out.update(teacher_enc_tokens=((None, enc), np.int32), teacher_mask=((None,), np.float32))
    if states:
        out["teacher_enc_states"] = states["enc_states"]
    return out


def _rl_shapes(stage: str):
    def shapes(config, vocab: SidVocab) -> BatchShapes:
        enc, states = _encoder(config)
        dec, depth = int(config.data.dec_len), vocab.num_levels
        settings = rl.rl_settings(config, stage)
        g = int(settings["group_size"])
        i32, f32 = np.int32, np.float32
        out = {"enc_tokens": ((None, enc), i32), "targets": ((None, None, depth), i32),
               "target_mask": ((None, None), f32), "query_id": ((None,), i32),
               "user_id": ((None,), i32), "sft_dec_inputs": ((None, dec), i32),
               "sft_dec_targets": ((None, dec), i32), "sft_dec_weights": ((None, dec), f32),
               "codes": ((None, g, depth), i32), "items": ((None, g), i32),
               "valid": ((None, g), np.bool_), "old_logp": ((None, g, depth), f32),
               "item_reward": ((None, g), f32), "reward_rel": ((None, g), f32),
               "reward_ctr": ((None, g), f32), "reward_co": ((None, g), f32), **states}
        if rl.needs_reference(settings):
            out["ref_logp"] = ((None, g, depth), f32)
        if rl.policy_distribution(settings)[0]:
            out["allowed"] = ((None, g, depth, max(vocab.level_sizes)), np.bool_)
        return out
    return shapes


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """`make_step(vocab)` -> the loop's `make_step(model, config, setup)`; `batch_shapes(config,
    vocab)` -> {key: (shape with None for free dims, dtype)}; `check_contract(batch)` the
    stage's own consistency checks; `config_sections` the config sections it reads."""
    name: str
    make_step: Callable[[SidVocab], Callable]
    batch_shapes: Callable[..., BatchShapes]
    check_contract: Callable[[Mapping], None]
    config_sections: tuple[str, ...]

    def check_config(self, config) -> None:
        missing = [s for s in self.config_sections if s not in config]
        if missing:
            raise ValueError(f"stage {self.name!r} reads config sections {missing}, which this "
                             f"config lacks")

    def batch_checker(self, config, vocab: SidVocab) -> Callable[[Mapping], None]:
        """`check(batch)`: the spec's keys, dtypes and fixed dimensions, then the contract."""
        shapes = self.batch_shapes(config, vocab)

        def check(batch: Mapping) -> None:
            missing = [k for k in shapes if k not in batch]
            if missing:
                raise ValueError(f"{self.name} batch is missing keys {missing}; the stage takes "
                                 f"{sorted(shapes)}")
            for key, (shape, dtype) in shapes.items():
                got = np.asarray(batch[key]) if not hasattr(batch[key], "shape") else batch[key]
                fixed = all(w is None or (g <= w if isinstance(w, UpTo) else g == w)
                            for w, g in zip(shape, got.shape))
                if len(got.shape) != len(shape) or not fixed:
                    raise ValueError(f"{self.name} batch[{key!r}] has shape {tuple(got.shape)}; "
                                     f"the stage takes {_show(shape)}")
                if np.dtype(got.dtype).kind != np.dtype(dtype).kind:
                    raise ValueError(f"{self.name} batch[{key!r}] has dtype {got.dtype}; the "
                                     f"stage takes {np.dtype(dtype)}")
            for key in ENCODER_ROWS & set(shapes):
                check_trailing_padding(f"{self.name} batch[{key!r}]", batch[key])
            self.check_contract(batch)

        return check

    def abstract_batch(self, config, vocab: SidVocab, sharding
                       ) -> dict[str, jax.ShapeDtypeStruct]:
        """The global batch as ShapeDtypeStructs (batch axis = train.batch_size, every array
        split along it), what the AOT compile lowers the step against."""
        b = int(config.train.batch_size)
        out = {}
        for key, (shape, dtype) in self.batch_shapes(config, vocab).items():
            dims = (b,) + tuple(NUM_TARGETS if d is None else int(d) for d in shape[1:])
            out[key] = jax.ShapeDtypeStruct(dims, jnp.dtype(dtype), sharding=sharding)
        return out


ENCODER_ROWS = frozenset({"enc_tokens", "teacher_enc_tokens"})


def check_trailing_padding(name: str, tokens) -> None:
    """Encoder rows keep their tokens first and the padding after (`text_tokenizer.compact`):
    cuDNN's attention reads the key-padding mask as lengths (`transformer.key_lengths`), so a
    pad between tokens would be attended there and not elsewhere. Refused by name."""
    real = np.asarray(tokens) != PAD_ID
    holes = np.nonzero(np.any(real[:, 1:] & ~real[:, :-1], axis=1))[0]
    if holes.size:
        raise ValueError(f"{name} row {int(holes[0])} has padding between its tokens; encoder "
                         "rows are right-padded (tokens first, text_tokenizer.compact)")


def _show(shape: Shape) -> str:
    return "(" + ", ".join("B" if i == 0 and d is None else "*" if d is None
                           else f"<={int(d)}" if isinstance(d, UpTo) else str(d)
                           for i, d in enumerate(shape)) + ")"


def _rl_step(stage: str):
    return lambda vocab: rl.make_rl_step(vocab, stage)


SPECS: dict[str, StageSpec] = {
    "sft": StageSpec("sft", lambda vocab: sft_step.make_train_step, _sft_shapes,
                     sft_step.check_batch, SFT_SECTIONS),
    "distill": StageSpec("distill", distill.make_distill_step,
                         _distill_shapes, distill.check_distill_batch,
                         SFT_SECTIONS + ("distill",)),
    "dpo": StageSpec("dpo", _rl_step("dpo"), _rl_shapes("dpo"), rl.check_rl_batch,
                     SFT_SECTIONS + ("rl",)),
    "grpo": StageSpec("grpo", _rl_step("grpo"), _rl_shapes("grpo"), rl.check_rl_batch,
                      SFT_SECTIONS + ("rl",)),
}


def get_spec(name: str) -> StageSpec:
    if name not in SPECS:
        raise ValueError(f"unknown training stage {name!r}; valid: {sorted(SPECS)}")
    return SPECS[name]
