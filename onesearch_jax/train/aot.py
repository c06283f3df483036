"""Ahead-of-time compilation of the train steps for a device topology we do not have.

`jax.experimental.topologies` describes a Cloud TPU slice (with `libtpu` installed, no TPU
needed) or NVIDIA GPUs (with `jax[cuda12]` installed, no GPU needed: XLA's GPU compiler runs
from a target description, without autotuning, so its kernel choices are the defaults); the
step is lowered against abstract inputs (ShapeDtypeStructs carrying the real shardings) over a
mesh of those devices and compiled by the TPU or GPU compiler on this CPU. The
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
import numpy as np

from onesearch_jax.model.sid_levels import level_ranges
from onesearch_jax.model.transformer import build_model, target_platform
from onesearch_jax import sharding as sharding_lib
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train import step_hlo
from onesearch_jax.train.stage_spec import SPECS
from onesearch_jax.train.train_state import setup_train_state


@dataclasses.dataclass(frozen=True)
class Chip:
    hbm_bytes: float
    peak_bf16_flops: float  # per chip, dense
    libtpu_name: str        # the generation as libtpu's topology names spell it
    chip_config: str        # 'megacore': the chip's two TensorCores are one device
    hbm_bytes_per_s: float  # HBM bandwidth per chip


GIB = 2.0 ** 30
# Public Cloud TPU figures per chip.
CHIPS = {
    "v4": Chip(32 * GIB, 275e12, "v4", "megacore", 1228e9),
    "v5e": Chip(16 * GIB, 197e12, "v5e", "default", 819e9),
    "v5p": Chip(95 * GIB, 459e12, "v5", "megacore", 2765e9),
    "v6e": Chip(32 * GIB, 918e12, "v6e", "default", 1640e9),
}


@dataclasses.dataclass(frozen=True)
class Gpu:
    """What XLA's GPU compiler needs to know of a card it cannot see (public specs)."""
    name: str
    memory_bytes: int
    bandwidth: float        # HBM bytes/s
    sms: int
    l2_bytes: int
    clock_ghz: float
    compute_capability: tuple[int, int]

    def target_config(self) -> str:
        """The card as a `stream_executor.GpuTargetConfigProto` text proto."""
        major, minor = self.compute_capability
        return (
            "gpu_device_info {\n"
            "  threads_per_block_limit: 1024\n  threads_per_warp: 32\n"
            "  shared_memory_per_block: 49152\n  shared_memory_per_core: 233472\n"
            "  shared_memory_per_block_optin: 232448\n  threads_per_core_limit: 2048\n"
            f"  core_count: {self.sms}\n  fpus_per_core: 128\n"
            "  block_dim_limit_x: 2147483647\n  block_dim_limit_y: 65535\n"
            "  block_dim_limit_z: 65535\n"
            f"  memory_bandwidth: {int(self.bandwidth)}\n  l2_cache_size: {self.l2_bytes}\n"
            f"  clock_rate_ghz: {self.clock_ghz}\n  device_memory_size: {self.memory_bytes}\n"
            f"  cuda_compute_capability {{ major: {major} minor: {minor} }}\n"
            "  registers_per_core_limit: 65536\n  registers_per_block_limit: 65536\n"
            "}\n"
            'platform_name: "CUDA"\n'
            "dnn_version_info { major: 9 minor: 10 }\n"
            "runtime_version { major: 12 minor: 8 }\n"
            f'device_description_str: "{self.name}"\n')


# NVIDIA H100 SXM / H200: 989 TFLOP/s dense bf16 (the peak the accelerator suite divides by).
GPUS = {
    "h100": (Chip(80 * GIB, 989e12, "", "", 3.35e12),
             Gpu("NVIDIA H100 80GB HBM3", 84_942_979_072, 3.35e12, 132, 50 * 2 ** 20, 1.98,
                 (9, 0))),
    "h200": (Chip(141e9, 989e12, "", "", 4.8e12),
             Gpu("NVIDIA H200 141GB HBM3e", 151_397_597_184, 4.8e12, 132, 50 * 2 ** 20, 1.98,
                 (9, 0))),
}
CHIPS_PER_HOST = (2, 2, 1)  # a Cloud TPU VM host's chips
STAGES = ("sft", "distill", "grpo")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def chip_of(topology: str) -> Chip:
    """'v5e:4x4' -> the v5e chip's HBM and peak; 'h200:1' -> one H200's."""
    kind = topology.split(":")[0].lower()
    if kind in GPUS:
        return GPUS[kind][0]
    if kind not in CHIPS:
        raise ValueError(f"unknown TPU generation or GPU {kind!r} in {topology!r}; known: "
                         f"{sorted(CHIPS) + sorted(GPUS)}")
    return CHIPS[kind]


def topology_devices(topology: str) -> list:
    """The devices of a named Cloud TPU topology ('v5e:4x4', 'v4:2x2x2'), compiled against
    through libtpu with no TPU attached, or of N GPUs on one host ('h200:1', 'h100:8'),
    compiled against through the CUDA plugin with no GPU attached."""
    from jax.experimental import topologies
    kind = topology.split(":")[0].lower()
    if kind in GPUS:
        count = topology.split(":", 1)[1] if ":" in topology else "1"
        try:
            desc = topologies.get_topology_desc(
                platform="cuda", target_config=GPUS[kind][1].target_config(),
                topology=f"1x1x{int(count)}")
        except Exception as e:  # noqa: BLE001 - the CUDA plugin missing: say so
            raise ValueError(f"cannot describe GPU topology {topology!r} ({e}); install the CUDA "
                               "plugin (pip install 'jax[cuda12]', no GPU needed) and run with "
                               "JAX_PLATFORMS=cpu") from e
        return list(desc.devices)
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
        raise ValueError(f"cannot describe TPU topology {topology!r} ({e}); install libtpu "
                           "(pip install -e '.[tpu]') and name a topology like v5e:4x4") from e
    return list(desc.devices)


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
        totals[m.group(2)] += float(step_hlo.shape_bytes(m.group(1)))
    return totals


def compile_step(stage: str, config, devices: Sequence, *, level_sizes: Sequence[int],
                 mesh_shape: Sequence[int] | None = None, hlo_path: str = "",
                 return_hlo: bool = False) -> dict:
    """Lowers and compiles `stage`'s train step for `devices`; per-chip figures of the result.
    `hlo_path`: also write the optimized per-chip HLO text there (for `step_hlo` readings);
    `return_hlo`: return it as 'hlo_text'."""
    mesh = sharding_lib.make_mesh(config.mesh.shape if mesh_shape is None else mesh_shape,
                                  devices=devices)
    layout = SidVocab.for_total(int(config.model.vocab_size), level_sizes)
    level_ranges(layout.level_offsets, layout.level_sizes)  # refuses an inconsistent layout by name
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} to compile; valid: {STAGES}")
    spec = SPECS[stage]
    model = build_model(config.model)
    setup = setup_train_state(model, config, mesh)
    step = spec.make_step(layout)(model, config, setup)
    batch = spec.abstract_batch(config, layout, sharding_lib.batch_sharding(mesh, setup.rules))
    rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype,
                               sharding=sharding_lib.replicated(mesh))
    start = time.perf_counter()
    with target_platform(devices[0].platform):  # 'auto' attention as the target resolves it
        lowered = step.lower(setup.abstract, batch, rng)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lower_s
    mem = compiled.memory_analysis()
    hlo = compiled.as_text()
    if hlo_path:
        with open(hlo_path, "w") as f:
            f.write(hlo)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    cost_source = "compiler"
    if not cost:  # XLA's GPU compiler without a GPU: matmul FLOPs and kernel bytes off the HLO
        cost = {"flops": step_hlo.dot_flops(hlo), "bytes accessed": step_hlo.kernel_bytes(hlo)}
        cost_source = "hlo"
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
        "cost_source": cost_source,
        "collective_bytes": collective_bytes(hlo),
        # The per-chip program: the batch split over the data and fsdp axes.
        "hlo": step_hlo.hlo_summary(
            hlo, dec_len=int(config.data.dec_len),
            batch=int(config.train.batch_size) // int(np.prod(mesh.devices.shape[:2])),
            vocab=int(model.cfg.vocab_size)),
        "heaviest_kernels": step_hlo.heaviest_kernels(hlo, 12),
        **({"hlo_text": hlo} if return_hlo else {}),
    }


def roofline_seconds(flops: float, bytes_accessed: float, chip: Chip) -> float:
    """A step's time if it ran at the chip's peak FLOPs or its HBM bandwidth, whichever binds
    (the compiled program's own counts): a lower bound, so the MFU it gives is an upper bound."""
    return max(flops / chip.peak_bf16_flops, bytes_accessed / chip.hbm_bytes_per_s)


def with_chip(report: dict, chip: Chip, model_flops: float | None = None) -> dict:
    """Adds whether the step fits the chip's HBM, its step time at peak FLOPs, its roofline time
    and, given the model's FLOPs per step per chip, the MFU that roofline time would reach."""
    out = {**report, "hbm_bytes": chip.hbm_bytes, "fits": report["total_bytes"] <= chip.hbm_bytes,
           "step_seconds_at_peak": report["flops"] / chip.peak_bf16_flops,
           "step_seconds_roofline": roofline_seconds(report["flops"], report["bytes_accessed"],
                                                     chip)}
    if model_flops is not None:
        out["model_flops"] = float(model_flops)
        out["mfu_roofline"] = model_flops / (out["step_seconds_roofline"] * chip.peak_bf16_flops)
    return out
