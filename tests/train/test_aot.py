"""Ahead-of-time compilation: collective bytes read from HLO, abstract batches that meet each
stage's contract, and (with libtpu) a train step compiled for a Cloud TPU topology on this CPU."""
import glob
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import aot as aot_configs
from onesearch_jax.model import presets
from onesearch_jax.train import aot
from onesearch_jax.train.stage_spec import SPECS
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax import sharding as sharding_lib

LEVELS = (64, 16, 8)


def _micro(stage):
    c = aot_configs.get_config(f"{stage}:tiny:8")
    c.model.update(d_model=32, num_heads=2, mlp_dim=64, enc_layers=1, dec_layers=1)
    c.data.enc_len, c.data.dec_len = 16, 8
    return c


def test_collective_bytes_counts_each_collective_result():
    mesh = jax.make_mesh((8,), ("data",))
    f = jax.jit(lambda x: x.sum(0), in_shardings=NamedSharding(mesh, P("data")),
                out_shardings=NamedSharding(mesh, P()))
    hlo = f.lower(jax.ShapeDtypeStruct((64, 128), jnp.float32)).compile().as_text()
    got = aot.collective_bytes(hlo)
    assert got["all-reduce"] == 128 * 4 and got["all-gather"] == 0  # one f32[128] partial sum
    text = """
  %ag = (bf16[4,256]{1,0}, bf16[32,256]{1,0}) all-gather-start(bf16[4,256]{1,0} %p), dimensions={0}
  %agd = bf16[32,256]{1,0} all-gather-done((bf16[4,256]{1,0}, bf16[32,256]{1,0}) %ag)
  %ar = (f32[16]{0}, s32[2]{0}) all-reduce(f32[16]{0} %a, s32[2]{0} %b), to_apply=%add
  %rs = f32[2,8]{1,0} reduce-scatter(f32[16,8]{1,0} %c), dimensions={0}
"""
    got = aot.collective_bytes(text)
    assert got["all-gather"] == 32 * 256 * 2  # the async pair once, its result
    assert got["all-reduce"] == 16 * 4 + 2 * 4 and got["reduce-scatter"] == 2 * 8 * 4


def test_abstract_batches_meet_each_stage_contract():
    mesh = sharding_lib.make_mesh((8, 1, 1))
    for stage in aot.STAGES:
        c = _micro(stage)
        layout = SidVocab.for_total(c.model.vocab_size, LEVELS)
        spec = SPECS[stage]
        specs = spec.abstract_batch(c, layout, sharding_lib.batch_sharding(
            mesh, sharding_lib.normalize_rules(c.mesh.logical_axis_rules)))
        spec.batch_checker(c, layout)({k: np.zeros(s.shape, s.dtype) for k, s in specs.items()})
        assert all(s.shape[0] == 8 for s in specs.values())
    assert layout.level_offsets == (256 - 88, 256 - 24, 256 - 8) and layout.level_sizes == LEVELS
    with pytest.raises(ValueError, match="leaves no text tokens"):
        SidVocab.for_total(80, LEVELS)
    with pytest.raises(ValueError, match="unknown TPU generation or GPU 'v9'"):
        aot.chip_of("v9:2x2")
    with pytest.raises(ValueError, match="unknown stage 'dpo' to compile"):
        aot_configs.get_config("dpo:tiny")


def _libtpu_path():
    """libtpu from `pip install -e .[tpu]`, or the copy `make test` keeps beside the venv."""
    try:
        import libtpu  # noqa: F401
        return None
    except ImportError:
        pass
    found = glob.glob(os.path.join(sys.prefix, "tpu-aot", "libtpu"))
    if not found:
        pytest.skip("libtpu is not installed (pip install -e '.[tpu]'; make test adds it)")
    return os.path.dirname(found[0])


def test_sft_step_compiles_for_a_tpu_topology_with_fsdp_sharded_state():
    path = _libtpu_path()
    if path and path not in sys.path:
        sys.path.append(path)
    devices = aot.topology_devices("v5e:2x2")
    assert len(devices) == 4 and "TPU" in devices[0].device_kind
    c = _micro("sft")
    # Widths of 512: a quarter (128) still fills the TPU's 128-lane tiles, so padding does not
    # hide the sharding.
    c.model.update(d_model=512, num_heads=4, mlp_dim=512)
    r = aot.with_chip(aot.compile_step("sft", c, devices, level_sizes=LEVELS,
                                       mesh_shape=(1, 4, 1)), aot.chip_of("v5e:2x2"))
    params = presets.param_count(presets.TransformerConfig(**c.model.to_dict()))
    state_bytes = 3 * 4 * params  # f32 parameters and Adam's two moments
    # FSDP: each chip holds about a quarter of the state (plus its batch rows and scalars).
    assert 0.2 * state_bytes < r["argument_bytes"] < 0.35 * state_bytes, (r, state_bytes)
    assert r["fits"] and r["flops"] > 0 and r["step_seconds_at_peak"] > 0
    assert r["collective_bytes"]["all-gather"] > 0  # parameters gathered for the forward pass
    assert r["mesh"] == [1, 4, 1] and r["alias_bytes"] > 0  # the state is donated


def test_roofline_time_is_the_binding_resource_and_mfu_follows():
    chip = aot.chip_of("v5e:4x4")
    report = {"flops": 197e12 * 0.01, "bytes_accessed": 819e9 * 0.02, "total_bytes": 1.0}
    r = aot.with_chip(report, chip, model_flops=197e12 * 0.005)
    assert r["step_seconds_at_peak"] == pytest.approx(0.01)
    assert r["step_seconds_roofline"] == pytest.approx(0.02)  # memory binds
    assert r["mfu_roofline"] == pytest.approx(0.25)
    compute_bound = aot.with_chip({**report, "bytes_accessed": 0.0}, chip, 197e12 * 0.005)
    assert compute_bound["mfu_roofline"] == pytest.approx(0.5)
    assert "mfu_roofline" not in aot.with_chip(report, chip)


def test_gpu_targets_describe_the_card_and_name_what_is_missing():
    chip = aot.chip_of("h200:1")
    assert chip.peak_bf16_flops == 989e12 and chip.hbm_bytes_per_s == 4.8e12
    config = aot.GPUS["h100"][1].target_config()
    assert "core_count: 132" in config and "memory_bandwidth: 3350000000000" in config
    assert "cuda_compute_capability { major: 9 minor: 0 }" in config
    with pytest.raises(ValueError, match="unknown TPU generation or GPU 'a1'"):
        aot.chip_of("a1:1")
    try:
        import jax_plugins.xla_cuda12  # noqa: F401 - with the CUDA plugin the compile can run
        pytest.skip("the CUDA plugin is installed here")
    except ImportError:
        pass
    with pytest.raises(ValueError, match=r"jax\[cuda12\]"):
        aot.topology_devices("h200:1")
