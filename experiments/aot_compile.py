"""Compiles the train steps for Cloud TPU topologies on this machine (no TPU): per-chip memory,
whether it fits HBM, FLOPs and the step time at peak, collective bytes per mesh layout.

    pip install -e '.[tpu]'      # libtpu: the TPU compiler, usable without a TPU
    JAX_PLATFORMS=cpu python -m experiments.aot_compile --preset=base \\
        --topologies=v5e:4x4,v4:2x2x2,v5p:2x2x2 --stages=sft,distill,grpo \\
        --fit_presets=small,minilm,base --meshes='8,1,1;1,8,1;2,2,2;1,1,8' \\
        --mesh_topology=v5p:2x2x2 --out=aot.json

`--stages` x `--topologies` compiles each stage's step for the `--preset` model (data
parallel over every chip unless --mesh); `--fit_presets` finds the largest preset whose SFT step
fits each topology; `--meshes` compiles the SFT step on each (data, fsdp, tensor) layout of
`--mesh_topology` and reports the bytes its collectives move.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

from configs import aot as aot_configs
from onesearch_jax import cli, fileio, quiet
from onesearch_jax.model import presets
from onesearch_jax.train import aot

_PRESET = flags.DEFINE_string("preset", "base", "Model preset (onesearch_jax/model/presets.py).")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Global batch; 0 = the preset's SFT batch.")
_TOPOLOGIES = flags.DEFINE_list("topologies", ["v5e:4x4", "v4:2x2x2", "v5p:2x2x2"],
                                "Cloud TPU topologies (generation:shape).")
_STAGES = flags.DEFINE_list("stages", list(aot.STAGES), f"Steps to compile, of {aot.STAGES}.")
_MESH = flags.DEFINE_list("mesh", ["-1", "1", "1"], "(data, fsdp, tensor) for --stages.")
_LEVELS = flags.DEFINE_list("sid_levels", ["512", "128", "64"],
                            "SID codebook sizes per level (configs/sids.py:small's).")
_FIT = flags.DEFINE_list("fit_presets", [], "Presets to try (SFT step) for the largest that "
                         "fits each topology, smallest first.")
_MESHES = flags.DEFINE_string("meshes", "", "';'-separated (data,fsdp,tensor) layouts for the "
                              "collective-bytes comparison, e.g. '8,1,1;1,8,1;2,2,2;1,1,8'.")
_MESH_TOPOLOGY = flags.DEFINE_string("mesh_topology", "v5p:2x2x2", "Topology of --meshes.")
_OUT = flags.DEFINE_string("out", "", "Write every report as JSON here.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "The model's compute "
                           "dtype (parameters stay float32; a TPU user trains in bfloat16).")
_ATTENTION = flags.DEFINE_enum("attention", "auto", ["auto", "xla", "cudnn"],
                               "model.attention_impl ('auto': cuDNN on a GPU target in bf16).")
_DUMP = flags.DEFINE_string("dump_hlo", "", "Write each compiled step's optimized HLO text into "
                            "this folder (one file per compile).")


def stage_config(stage: str, preset: str, batch_size: int, dtype: str = "float32",
                 attention: str = "auto"):
    c = aot_configs.get_config(f"{stage}:{preset}:{batch_size or ''}")
    c.model.dtype, c.model.attention_impl = dtype, attention
    return c


def _gb(x: float) -> str:
    return f"{x / aot.GIB:.2f}"


def _row(topology: str, r: dict) -> str:
    return (f"| {r['stage']} | {topology} | {'x'.join(map(str, r['mesh']))} | "
            f"{_gb(r['argument_bytes'])} | {_gb(r['temp_bytes'])} | {_gb(r['total_bytes'])} | "
            f"{_gb(r['hbm_bytes'])} | {'yes' if r['fits'] else 'NO'} | "
            f"{r['flops'] / 1e12:.2f} | {r['step_seconds_at_peak'] * 1e3:.1f} | "
            f"{r['step_seconds_roofline'] * 1e3:.1f} | "
            f"{format(r['mfu_roofline'], '.0%') if 'mfu_roofline' in r else '-'} | "
            f"{r['compile_seconds']:.1f} |")


def sft_model_flops(preset: str, batch_size: int, devices: int) -> float:
    """The model's training FLOPs of one SFT step per chip (6 x parameters x tokens, with
    attention), at the SFT config's sequence lengths: the MFU numerator."""
    c = stage_config("sft", preset, batch_size)
    cfg = presets.TransformerConfig(**c.model.to_dict())
    per_example = presets.train_flops_per_example(cfg, int(c.data.enc_len), int(c.data.dec_len))
    return per_example * int(c.train.batch_size) / devices


class Reports:
    """Every compile's report, keyed by what was compiled, saved to --out after each one: a
    rerun skips what is there (a base-size compile takes minutes on a small CPU)."""

    def __init__(self, path: str):
        self.path, self.rows = path, {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.rows = json.load(f)

    def get(self, key: str, compute):
        if key not in self.rows:
            self.rows[key] = compute()
            if self.path:
                fileio.write_json(self.path, self.rows)
        return self.rows[key]


def main(argv):
    del argv  # cli.run refuses leftover arguments
    quiet.quiet_libraries()
    bad = sorted(set(_STAGES.value) - set(aot.STAGES))
    if bad:
        raise app.UsageError(f"unknown --stages {bad}; valid: {aot.STAGES}")
    levels = [int(s) for s in _LEVELS.value]
    mesh = tuple(int(s) for s in _MESH.value)
    reports = Reports(_OUT.value)
    devices = {}

    def compile_on(topology, stage, preset, shape):
        key = (f"{stage}|{preset}|batch{_BATCH.value}|{topology}|{','.join(map(str, shape))}"
               + ("" if levels == [512, 128, 64] else f"|sids{'-'.join(map(str, levels))}")
               + ("" if _DTYPE.value == "float32" else f"|{_DTYPE.value}")
               + ("" if _ATTENTION.value == "auto" else f"|attention-{_ATTENTION.value}"))

        def compute():
            if topology not in devices:
                devices[topology] = aot.topology_devices(topology)
            dump = ""
            if _DUMP.value:
                os.makedirs(_DUMP.value, exist_ok=True)
                dump = os.path.join(_DUMP.value, key.replace("|", "_").replace(":", "-")
                                    .replace(",", "-") + ".hlo.txt")
            r = aot.compile_step(stage, stage_config(stage, preset, _BATCH.value, _DTYPE.value,
                                                     _ATTENTION.value),
                                 devices[topology], level_sizes=levels, mesh_shape=shape,
                                 hlo_path=dump)
            return {**r, "topology": topology, "preset": preset}
        r = reports.get(key, compute)
        # MFU counts the SFT step's model FLOPs (distill and GRPO do more work per example).
        flops = sft_model_flops(preset, _BATCH.value, r["devices"]) if stage == "sft" else None
        return aot.with_chip(r, aot.chip_of(topology), flops)

    cfg = presets.TransformerConfig(**presets.get_preset(_PRESET.value))
    print(f"model preset {_PRESET.value}: {presets.param_count(cfg) / 1e6:.1f}M parameters; "
          f"SID levels {levels}")
    print("| step | topology | mesh | args GiB/chip | temp GiB/chip | total GiB/chip | HBM GiB | "
          "fits | TFLOPs/chip/step | ms/step at peak | ms/step roofline | MFU at roofline | "
          "compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for stage in _STAGES.value:  # stage-major: the SFT row of every topology comes first
        for topology in _TOPOLOGIES.value:
            print(_row(topology, compile_on(topology, stage, _PRESET.value, mesh)), flush=True)
    for topology in _TOPOLOGIES.value if _FIT.value else ():
        largest = None
        for preset in _FIT.value:
            r = compile_on(topology, "sft", preset, mesh)
            print(f"fit {topology}: {preset} {_gb(r['total_bytes'])} GiB/chip of "
                  f"{_gb(r['hbm_bytes'])}: {'fits' if r['fits'] else 'does not fit'}", flush=True)
            largest = preset if r["fits"] else largest
        print(f"largest preset that fits {topology}: {largest}")
    if _MESHES.value:
        print(f"\ncollective bytes per step, SFT step of {_PRESET.value} on {_MESH_TOPOLOGY.value} "
              "(MiB per chip)")
        print("| mesh (data,fsdp,tensor) | " + " | ".join(aot.COLLECTIVES) + " | total |")
        print("|---|" + "---|" * (len(aot.COLLECTIVES) + 1))
        for spec in _MESHES.value.split(";"):
            shape = tuple(int(s) for s in spec.split(","))
            cb = compile_on(_MESH_TOPOLOGY.value, "sft", _PRESET.value, shape)["collective_bytes"]
            print(f"| {spec} | " + " | ".join(f"{cb[k] / 2**20:.1f}" for k in aot.COLLECTIVES)
                  + f" | {sum(cb.values()) / 2**20:.1f} |", flush=True)
    if _OUT.value:
        print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main, compilation_cache=False)  # TPU/GPU programs this CPU cannot load
