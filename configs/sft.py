"""OneSearch V1 supervised training (query -> SID tokens).

Launch:
  python -m experiments.train --config=configs/sft.py:tiny --workdir=W
  python -m experiments.train --config=configs/sft.py:small --workdir=W --config.train.steps=20000

Presets: tiny (CPU CI: loss falls within a few hundred steps), small, base (BART-base-like),
minilm (pretrained MiniLM-L6 encoder + decoder from scratch; needs MiniLM's tokenizer, so only
the real-catalog config configs/homedepot.py:minilm prepares data for it).
`model.vocab_size` is set by the data pipeline (text tokens + SID tokens).
"""

from __future__ import annotations

import ml_collections

from onesearch_jax.model import presets
from onesearch_jax.sharding import DEFAULT_RULES

_TRAIN = {
    "tiny": dict(steps=1000, batch_size=64, lr=3e-3, warmup=50),
    "small": dict(steps=20000, batch_size=256, lr=1e-3, warmup=1000),
    "base": dict(steps=100000, batch_size=1024, lr=5e-4, warmup=2000),
    "minilm": dict(steps=20000, batch_size=128, lr=1e-3, warmup=1000),
}


def get_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    name = arg or "tiny"
    if name not in presets.PRESETS:
        raise ValueError(f"unknown sft preset {name!r}; valid: {sorted(presets.PRESETS)}")
    c = ml_collections.ConfigDict()
    c.preset = name
    c.stage = "sft"
    c.model = ml_collections.ConfigDict(
        dict(presets.TransformerConfig(**presets.get_preset(name)).__dict__)
    )
    c.model.dropout_rate = 0.0 if name == "tiny" else 0.1
    c.model.vocab_multiple = 128  # embedding rows padded to a multiple of 128 (TPU lanes, TP)

    t = _TRAIN[name]
    c.train = ml_collections.ConfigDict(
        dict(
            steps=t["steps"],
            batch_size=t["batch_size"],
            lr=t["lr"],
            warmup=t["warmup"],
            min_lr_ratio=0.1,
            weight_decay=0.01,
            clip=1.0,
            b1=0.9,
            b2=0.98,
            label_smoothing=0.0,
            z_loss=0.0,
            log_every=50,
            eval_every=500 if name == "tiny" else 1000,
            checkpoint_every=250 if name == "tiny" else 1000,
            keep=3,
            seed=0,
            # Batches built ahead on an input thread (train/prefetch.py); 0 = no thread,
            # -1 = auto (2 on GPU/TPU, none on the CPU backend, where it does not pay).
            prefetch=-1,
            # 'WORKDIR@STEP': start from that run's train state at STEP (train/branch.py: an
            # ablation sharing its parent's first STEP steps); '' = a fresh run.
            branch_from="",
            # Stop after this step (checkpointing it) on train.steps' schedule; 0 = at
            # train.steps. A runtime key: a later run without it resumes to the end.
            stop_at=0,
            # Learning-rate multiplier of the pretrained encoder (minilm preset).
            pretrained_lr_scale=0.1 if name == "minilm" else 1.0,
            # Clipping's global norm: 'stacked' (same-role parameters stacked, a GPU kernel per
            # role, not per leaf: train/global_norm.py), 'per_leaf' (optax's), 'auto' = stacked
            # on a GPU only.
            grad_norm="auto",
        )
    )

    c.mesh = ml_collections.ConfigDict(
        dict(
            shape=(-1, 1, 1),  # ('data', 'fsdp', 'tensor'); -1 = all remaining devices
            logical_axis_rules=[list(r) for r in DEFAULT_RULES],
        )
    )

    # Placeholder: the data pipeline extends this section.
    # The SFT task mixture (onesearch_jax/data/sft_tasks.py): the paper's three stages in order,
    # each a share of train.steps, replaying a little of the earlier stages' tasks.
    c.data = ml_collections.ConfigDict(
        dict(
            enc_len=64,
            dec_len=8,
            # Keyword coverage: only queries with at least this many training-log events keep
            # their keywords (an offline LLM budget); the rest train with the student's input.
            keyword_min_events=1,
            stages=[
                dict(
                    name="alignment",
                    fraction=0.3,
                    mixture=dict(item_to_sid=1.0, query_to_category=0.3),
                ),
                dict(
                    name="cooccurrence",
                    fraction=0.3,
                    mixture=dict(
                        query_to_item=1.0, qsid_to_item=0.3, item_to_qsid=0.1, item_to_sid=0.3
                    ),
                ),
                dict(
                    name="personalization",
                    fraction=0.4,
                    mixture=dict(personalized=1.0, query_to_item=0.3, item_to_sid=0.2),
                ),
            ],
        )
    )
    # Evaluation during training (valid day) and by experiments.evaluate (test day).
    c.eval = ml_collections.ConfigDict(
        dict(beam_size=32 if name == "tiny" else 64, max_events=1000)
    )
    return c
