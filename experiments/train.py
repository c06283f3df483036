"""Trains the OneSearch V1 baseline (the three SFT stages) on a workdir's world and SIDs.

    python -m experiments.build_world --config=configs/world.py:tiny --workdir=W
    python -m experiments.build_sids --config=configs/sids.py:tiny --workdir=W
    python -m experiments.train --config=configs/sft.py:tiny --workdir=W

Resumes from W/checkpoints; writes TensorBoard events under W/tensorboard, W/metrics.jsonl and a
progress line; evaluates on a sample of valid-day events every `train.eval_every` steps.
"""
from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.data import sft_tasks
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train.loop import train_loop

_CONFIG = config_flags.DEFINE_config_file("config", "configs/sft.py:tiny", "Training config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir with a built world and SIDs.", required=True)


def prepare(config, workdir: str):
    """Loads the workdir's data, sizes the vocabulary, and builds the task mixture."""
    world = artifacts.load_world(workdir)
    tokenizer = artifacts.load_tokenizer(workdir)
    khqe, item_codes, query_codes = artifacts.load_sids(workdir)
    vocab = SidVocab(tokenizer.get_vocab_size(), khqe.level_sizes)
    config.model.vocab_size = vocab.vocab_size
    builder = sft_tasks.TaskBuilder(world, tokenizer, vocab, item_codes, query_codes,
                                    enc_len=int(config.data.enc_len), dec_len=int(config.data.dec_len))
    return world, vocab, item_codes, builder


def main(argv):
    del argv
    config, workdir = _CONFIG.value, _WORKDIR.value
    world, vocab, item_codes, builder = prepare(config, workdir)
    wd.guard_config(workdir, "train", config)
    logging.info("building the SFT task mixture")
    tasks = builder.build(artifacts.load_train_clicks(workdir), artifacts.load_events(workdir, "train"))
    for name, t in tasks.items():
        logging.info("task %s: %d examples", name, len(t))
    batches = sft_tasks.MixtureBatches(
        tasks, sft_tasks.parse_stages(config.data.stages), total_steps=int(config.train.steps),
        batch_size=int(config.train.batch_size), seed=int(config.train.seed))
    model = build_model(TransformerConfig(**config.model.to_dict()))

    trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
    events = artifacts.load_events(workdir, "valid", int(config.eval.max_events))
    targets = world_eval.WorldTargets(world, events)
    retriever = None

    def eval_fn(state, step):
        nonlocal retriever
        if retriever is None:
            retriever = SidRetriever(model, state.params, vocab, trie,
                                     beam_size=int(config.eval.beam_size))
        retriever.params = state.params
        scores = generative_eval.evaluate_events(retriever, builder, events, targets)
        return {k: scores[k] for k in ("rel_hr@10", "click_hr@10", "order_hr@10", "valid_sid_rate")}

    result = train_loop(config, workdir, model, batches, eval_fn)
    summary = {f"train/{k}": v for k, v in result.metrics.items()}
    summary["train/steps"] = result.step
    wd.write_metrics(workdir, "train", summary, config)
    print(f"trained to step {result.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in summary.items()))


if __name__ == "__main__":
    app.run(main)
