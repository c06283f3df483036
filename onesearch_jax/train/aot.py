"""Ahead-of-time compilation of the train steps for a device topology we do not have.

`jax.experimental.topologies` describes a Cloud TPU slice (with `libtpu` installed, no TPU
needed); the step is lowered against abstract inputs (ShapeDtypeStructs carrying the real
shardings) over a mesh of those devices and compiled by the TPU compiler on this CPU. The
compiled program reports its per-chip memory (does the preset fit the chip's HBM?), its FLOPs
(the step time at peak) and, from its HLO, the bytes each collective moves per step (which
parallelism to choose). Every stage's step (`sft`, `distill`, `grpo`) is the one training runs.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.model.presets import FROZEN_STATE_DIM
from onesearch_jax.model.sid_levels import level_ranges
from onesearch_jax.model.transformer import build_model
from onesearch_jax.train import distill, rl, sft_step
from onesearch_jax import sharding as sharding_lib
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train.train_state import setup_train_state


@dataclasses.dataclass(frozen=True)
class Chip:
    hbm_bytes: float
    peak_bf16_flops: float  # per chip, dense
    libtpu_name: str        # the generation as libtpu's topology names spell it
    chip_config: str        # 'megacore': the chip's two TensorCores are one device


GIB = 2.0 ** 30
# Public Cloud TPU figures per chip.
CHIPS = {
    "v4": Chip(32 * GIB, 275e12, "v4", "megacore"),
    "v5e": Chip(16 * GIB, 197e12, "v5e", "default"),
    "v5p": Chip(95 * GIB, 459e12, "v5", "megacore"),
    "v6e": Chip(32 * GIB, 918e12, "v6e", "default"),
}
CHIPS_PER_HOST = (2, 2, 1)  # a Cloud TPU VM host's chips
STAGES = ("sft", "distill", "grpo")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8}


def chip_of(topology: str) -> Chip:
    """'v5e:4x4' -> the v5e chip's HBM and peak."""
    kind = topology.split(":")[0].lower()
    if kind not in CHIPS:
        raise ValueError(f"unknown TPU generation {kind!r} in {topology!r}; known: {sorted(CHIPS)}")
    return CHIPS[kind]


def topology_devices(topology: str) -> list:
    """The devices of a named Cloud TPU topology ('v5e:4x4', 'v4:2x2x2'), compiled against
    through libtpu with no TPU attached."""
    from jax.experimental import topologies
    # Compiling touches no TPU: let several compiling processes share libtpu (by default it
    # takes a machine-wide lockfile, meant for a process that owns the chips).
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    chip = chip_of(topology)
    shape = topology.split(":", 1)[1] if ":" in topology else ""
    try:
        desc = topologies.get_topology_desc(
            platform="tpu", topology_name=f"{chip.libtpu_name}:{shape}",
            chip_config_name=chip.chip_config, chips_per_host_bounds=CHIPS_PER_HOST)
    except Exception as e:  # noqa: BLE001 - libtpu missing or the name unknown: say which
        raise RuntimeError(f"cannot describe TPU topology {topology!r} ({e}); install libtpu "
                           "(pip install -e '.[tpu]') and name a topology like v5e:4x4") from e
    return list(desc.devices)


def _spec(shape, dtype, sharding):
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.dtype(dtype), sharding=sharding)


def abstract_batch(stage: str, config, layout: SidVocab, sharding, *, num_targets: int = 10
                   ) -> dict[str, jax.ShapeDtypeStruct]:
    """The global batch a stage's step takes (shapes and dtypes of what its data or rollout
    hook produces), every array split along the batch axis."""
    b, enc, dec = int(config.train.batch_size), int(config.data.enc_len), int(config.data.dec_len)
    i32, f32 = np.int32, np.float32
    frozen = config.model.get("encoder", "scratch") == "frozen_minilm"
    if frozen:  # memory slots (data/encoder_memory.py) and their MiniLM states
        enc = int(config.data.get("mem_len", 0) or enc)
    states = {"enc_states": (b, enc, FROZEN_STATE_DIM, f32)} if frozen else {}
    if stage in ("sft", "distill"):
        out = {"enc_tokens": (b, enc, i32), "dec_inputs": (b, dec, i32),
               "dec_targets": (b, dec, i32), "dec_weights": (b, dec, f32), **states}
        if stage == "distill":
            out.update(teacher_enc_tokens=(b, enc, i32), teacher_mask=(b, f32))
            if frozen:
                out["teacher_enc_states"] = (b, enc, FROZEN_STATE_DIM, f32)
    elif stage == "grpo":
        settings = rl.rl_settings(config, "grpo")
        g, depth = int(settings["group_size"]), layout.num_levels
        out = {"enc_tokens": (b, enc, i32), "targets": (b, num_targets, depth, i32),
               "target_mask": (b, num_targets, f32), "query_id": (b, i32), "user_id": (b, i32),
               "sft_dec_inputs": (b, dec, i32), "sft_dec_targets": (b, dec, i32),
               "sft_dec_weights": (b, dec, f32), "codes": (b, g, depth, i32),
               "items": (b, g, i32), "valid": (b, g, np.bool_), "old_logp": (b, g, depth, f32),
               "item_reward": (b, g, f32), "reward_rel": (b, g, f32),
               "reward_ctr": (b, g, f32), "reward_co": (b, g, f32), **states}
        if rl.needs_reference(settings):
            out["ref_logp"] = (b, g, depth, f32)
    else:
        raise ValueError(f"unknown stage {stage!r} to compile; valid: {STAGES}")
    return {k: _spec(v[:-1], v[-1], sharding) for k, v in out.items()}


def make_stage_step(stage: str, layout: SidVocab):
    """The loop's `make_step(model, config, setup)` of a stage."""
    if stage == "sft":
        return sft_step.make_train_step
    if stage == "distill":
        return distill.make_distill_step(layout.level_offsets, layout.level_sizes)
    if stage == "grpo":
        return rl.make_rl_step(layout.level_offsets, layout.level_sizes, "grpo")
    raise ValueError(f"unknown stage {stage!r} to compile; valid: {STAGES}")


def collective_bytes(hlo_text: str) -> dict[str, float]:
    """Bytes each kind of collective produces per step, summed over the compiled HLO's
    instructions: a synchronous op's result (every part of a tuple), an async pair once, at its
    `-done` (whose shape is exactly the result; a `-start` tuple also holds the operands and
    context scalars)."""
    totals = {k: 0.0 for k in COLLECTIVES}
    pattern = re.compile(r"=\s*(.+?)\s+(" + "|".join(COLLECTIVES) + r")(-done)?\(")
    for line in hlo_text.splitlines():
        m = pattern.search(line)
        if not m:
            continue
        shapes = re.findall(r"(\w+)\[([\d,]*)\]", m.group(1))
        totals[m.group(2)] += float(sum(
            _DTYPE_BYTES.get(dt, 4) * float(np.prod([int(d) for d in dims.split(",") if d] or [1]))
            for dt, dims in shapes))
    return totals


def compile_step(stage: str, config, devices: Sequence, *, level_sizes: Sequence[int],
                 mesh_shape: Sequence[int] | None = None) -> dict:
    """Lowers and compiles `stage`'s train step for `devices`; per-chip figures of the result."""
    mesh = sharding_lib.make_mesh(config.mesh.shape if mesh_shape is None else mesh_shape,
                                  devices=devices)
    layout = SidVocab.for_total(int(config.model.vocab_size), level_sizes)
    level_ranges(layout.level_offsets, layout.level_sizes)  # refuses an inconsistent layout by name
    model = build_model(config.model)
    setup = setup_train_state(model, config, mesh)
    step = make_stage_step(stage, layout)(model, config, setup)
    batch = abstract_batch(stage, config, layout,
                           sharding_lib.batch_sharding(mesh, setup.rules))
    rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype,
                               sharding=sharding_lib.replicated(mesh))
    start = time.perf_counter()
    lowered = step.lower(setup.abstract, batch, rng)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lower_s
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)
    return {
        "stage": stage, "mesh": list(mesh.devices.shape), "devices": int(mesh.size),
        "lower_seconds": lower_s, "compile_seconds": compile_s,
        "argument_bytes": float(mem.argument_size_in_bytes),
        "output_bytes": float(mem.output_size_in_bytes),
        "temp_bytes": float(mem.temp_size_in_bytes),
        "alias_bytes": float(mem.alias_size_in_bytes),
        "total_bytes": float(total),
        "flops": float(cost.get("flops", 0.0)),
        "bytes_accessed": float(cost.get("bytes accessed", 0.0)),
        "collective_bytes": collective_bytes(compiled.as_text()),
    }


def with_chip(report: dict, chip: Chip) -> dict:
    """Adds whether the step fits the chip's HBM and its step time at peak FLOPs."""
    return {**report, "hbm_bytes": chip.hbm_bytes, "fits": report["total_bytes"] <= chip.hbm_bytes,
            "step_seconds_at_peak": report["flops"] / chip.peak_bf16_flops}
