"""A stage is one object: its batch contract (keys, shapes, dtypes) refuses what does not fit by
name, and the registry refuses a config that lacks a section the stage reads."""
import ml_collections
import numpy as np
import pytest

from configs import distill as distill_configs
from configs import grpo as grpo_configs
from onesearch_jax.pipeline import stages
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train.stage_spec import SPECS, get_spec

VOCAB = SidVocab(100, (8, 4, 2))


def _batch(shapes, rows=3):
    return {k: np.zeros((rows,) + tuple(2 if d is None else d for d in shape[1:]), dtype)
            for k, (shape, dtype) in shapes.items()}


def test_sft_spec_by_hand():
    c = distill_configs.get_config("tiny:v1")
    shapes = SPECS["sft"].batch_shapes(c, VOCAB)
    enc, dec = int(c.data.enc_len), int(c.data.dec_len)
    assert shapes == {"enc_tokens": ((None, enc), np.int32), "dec_inputs": ((None, dec), np.int32),
                      "dec_targets": ((None, dec), np.int32),
                      "dec_weights": ((None, dec), np.float32)}
    check = SPECS["sft"].batch_checker(c, VOCAB)
    good = _batch(shapes)
    check(good)
    with pytest.raises(ValueError, match=r"missing keys \['dec_weights'\]"):
        check({k: v for k, v in good.items() if k != "dec_weights"})
    with pytest.raises(ValueError, match=r"batch\['enc_tokens'\] has dtype float32"):
        check({**good, "enc_tokens": good["enc_tokens"].astype(np.float32)})
    with pytest.raises(ValueError, match=rf"batch\['dec_inputs'\] has shape \(3, {dec + 1}\); "
                                         rf"the stage takes \(B, {dec}\)"):
        check({**good, "dec_inputs": np.zeros((3, dec + 1), np.int32)})
    rows = np.zeros((3, enc), np.int32)
    rows[0, :3], rows[1, :enc] = 7, 7  # right-padded, full
    check({**good, "enc_tokens": rows})
    rows[2, 1] = 7  # a pad before a token: cuDNN would read the mask as a length
    with pytest.raises(ValueError, match=r"batch\['enc_tokens'\] row 2 has padding between"):
        check({**good, "enc_tokens": rows})


def test_frozen_encoder_and_teacher_add_their_inputs():
    c = distill_configs.get_config("tiny_minilm:sd")
    shapes = SPECS["distill"].batch_shapes(c, VOCAB)
    mem = int(c.data.mem_len)
    assert shapes["enc_states"] == ((None, mem, 384), np.float32)
    assert shapes["teacher_enc_states"] == ((None, mem, 384), np.float32)
    assert shapes["teacher_mask"] == ((None,), np.float32)
    check = SPECS["distill"].batch_checker(c, VOCAB)
    check(_batch(shapes))
    with pytest.raises(ValueError, match="missing keys.*enc_states"):
        check({k: v for k, v in _batch(shapes).items() if k != "enc_states"})


def test_stage_wide_memory_takes_narrower_batches_up_to_mem_len():
    c = distill_configs.get_config("tiny_minilm:sd")
    assert c.data.mem_width == "stage"
    mem = int(c.data.mem_len)
    check = SPECS["distill"].batch_checker(c, VOCAB)
    shapes = SPECS["distill"].batch_shapes(c, VOCAB)
    narrow = {k: (v[:, :mem - 8] if k.startswith(("enc_", "teacher_enc_")) else v)
              for k, v in _batch(shapes).items()}
    assert narrow["enc_states"].shape[1:] == (mem - 8, 384)
    check(narrow)
    wide = dict(narrow, enc_tokens=np.zeros((3, mem + 1), np.int32))
    with pytest.raises(ValueError, match=rf"batch\['enc_tokens'\] has shape \(3, {mem + 1}\); "
                                         rf"the stage takes \(B, <={mem}\)"):
        check(wide)
    c.data.mem_width = "fixed"
    with pytest.raises(ValueError, match=rf"the stage takes \(B, {mem}\)"):
        SPECS["distill"].batch_checker(c, VOCAB)(narrow)
    c.data.mem_width = "per_batch"
    with pytest.raises(ValueError, match=r"mem_width='per_batch'; valid: \('fixed', 'stage'\)"):
        SPECS["distill"].batch_shapes(c, VOCAB)


def test_rl_spec_follows_the_group_and_the_reference():
    c = grpo_configs.get_config("tiny")
    shapes = SPECS["grpo"].batch_shapes(c, VOCAB)
    g = int(c.rl.group_size)
    assert shapes["codes"] == ((None, g, 3), np.int32)
    assert shapes["targets"] == ((None, None, 3), np.int32)  # any number of logged targets
    assert ("ref_logp" in shapes) == (float(c.rl.get("beta", 0.0)) > 0)
    assert "ref_logp" in SPECS["dpo"].batch_shapes(c, VOCAB)  # DPO always compares
    SPECS["grpo"].batch_checker(c, VOCAB)(_batch(shapes))


def test_registry_holds_one_stage_object_per_name(tmp_path):
    assert set(stages.STAGES) == {"sft", "distill", "sft_real", "dpo", "grpo"}
    for name, stage in stages.STAGES.items():
        assert stage.spec is SPECS[stage.spec.name]
    with pytest.raises(ValueError, match="unknown training stage 'grpoo'"):
        get_spec("grpoo")
    c = distill_configs.get_config("tiny:sd")
    del c["distill"]
    with pytest.raises(ValueError, match=r"reads config sections \['distill'\]"):
        stages.get_stage("distill")(c, "/tmp/unused")
    c = distill_configs.get_config("tiny:sd")
    c.train.grad_norm = "stacks"
    with pytest.raises(ValueError, match="train.grad_norm must be one of"):
        stages.get_stage("distill")(c, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()  # refused before anything is recorded
    with pytest.raises(ValueError, match=r"reads config sections \['sids', 'data_dir'"):
        stages.get_stage("sft_real")(ml_collections.ConfigDict(
            {k: {} for k in ("model", "data", "train", "eval", "mesh")}), "/tmp/unused")
