"""Train-step throughput of a model preset on this machine, and its model FLOPs per token.

  python -m benchmarks.train_throughput --preset=small --batch=64 --enc_len=32 --dec_len=6

Tokens are encoder + decoder positions (B * (S + T) per step), the same count
`flops_per_token` divides by, so tokens/s * flops_per_token = achieved FLOP/s.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from configs.sft import get_config
from onesearch_jax.train import global_norm, step_hlo
from onesearch_jax.model import presets
from onesearch_jax.model.transformer import build_model
from onesearch_jax import sharding
from onesearch_jax.train.sft_step import make_train_step
from onesearch_jax.train.train_state import create_train_state, setup_train_state


def random_batch(rng: np.random.Generator, vocab: int, batch: int, enc_len: int, dec_len: int):
    tgt = rng.integers(1, vocab, (batch, dec_len)).astype(np.int32)
    return dict(
        enc_tokens=rng.integers(1, vocab, (batch, enc_len)).astype(np.int32),
        dec_inputs=np.concatenate([np.ones((batch, 1), np.int32), tgt[:, :-1]], 1),
        dec_targets=tgt,
        dec_weights=np.ones((batch, dec_len), np.float32),
    )


def measure(
    preset: str, batch: int, enc_len: int, dec_len: int, steps: int, dtype: str = "float32",
    hlo: bool = False, trace_dir: str = "", attention: str = "auto", grad_norm: str = "auto",
) -> dict:
    """Compiles the SFT step ahead of time (the first-step figure), then times `steps` calls of
    the executable. `hlo` adds the compiled program's cost analysis and HLO summary
    (`step_hlo.hlo_summary`); `trace_dir` writes a `jax.profiler` trace of 3 more steps;
    `attention`: model.attention_impl; `grad_norm`: train.grad_norm."""
    config = get_config(preset)
    config.model.dtype, config.model.attention_impl = dtype, attention
    config.train.batch_size, config.train.grad_norm = batch, grad_norm
    model_cfg = presets.TransformerConfig.from_dict(config.model)
    model = build_model(model_cfg)
    mesh = sharding.make_mesh(config.mesh.shape)
    setup = setup_train_state(model, config, mesh)
    state = create_train_state(setup, 0)
    step = make_train_step(model, config, setup)
    rng = np.random.default_rng(0)
    batches = [
        sharding.shard_batch(
            random_batch(rng, model_cfg.vocab_size, batch, enc_len, dec_len), mesh, setup.rules
        )
        for _ in range(2)
    ]
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batches[0], key).compile()
    state, m = compiled(state, batches[0], key)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        state, m = compiled(state, batches[i % 2], key)
    jax.block_until_ready(m)
    dt = time.perf_counter() - t0
    if trace_dir:
        with jax.profiler.trace(trace_dir):
            for i in range(3):
                state, m = compiled(state, batches[i % 2], key)
            jax.block_until_ready(m)
    tokens_per_s = steps * batch * (enc_len + dec_len) / dt
    fpt = presets.flops_per_token(model_cfg, enc_len, dec_len)
    out = {
        "preset": preset,
        "device": str(jax.devices()[0].device_kind),
        "num_devices": jax.device_count(),
        "batch": batch,
        "enc_len": enc_len,
        "dec_len": dec_len,
        "dtype": dtype,
        "attention": attention,
        "grad_norm": global_norm.resolve(grad_norm, jax.default_backend()),
        "params": presets.param_count(model_cfg),
        "first_step_s": round(compile_s, 2),
        "steps_per_s": round(steps / dt, 3),
        "tokens_per_s": round(tokens_per_s, 1),
        "model_flops_per_token": fpt,
        "achieved_tflops": round(tokens_per_s * fpt / 1e12, 4),
    }
    if hlo:
        out.update(step_hlo.compiled_summary(compiled, batch=batch, dec_len=dec_len,
                                             vocab=model_cfg.vocab_size))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--enc_len", type=int, default=32)
    p.add_argument("--dec_len", type=int, default=6)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--hlo", action="store_true", help="add the compiled step's HLO summary")
    p.add_argument("--trace_dir", default="", help="write a jax.profiler trace of 3 steps here")
    p.add_argument("--attention", default="auto", help="model.attention_impl")
    p.add_argument("--grad_norm", default="auto", choices=["auto", "stacked", "per_leaf"],
                   help="train.grad_norm ('auto': stacked on a GPU; 'per_leaf': optax's)")
    a = p.parse_args()
    print(json.dumps(measure(a.preset, a.batch, a.enc_len, a.dec_len, a.steps, a.dtype, a.hlo,
                             a.trace_dir, a.attention, a.grad_norm), indent=1))


if __name__ == "__main__":
    main()
