"""The V1 SFT run on a workdir: task mixture from the world + SIDs, the generic loop, eval hook."""

from __future__ import annotations

from absl import logging

from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.data import sft_tasks
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.pretrained import pretrained_init
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train.loop import train_loop

EVAL_KEYS = ("rel_hr@10", "click_hr@10", "order_hr@10", "valid_sid_rate")


def prepare(config, workdir: str):
    """Loads the workdir's data and sizes the model's vocabulary (text + SID tokens)."""
    world = artifacts.load_world(workdir)
    tokenizer = artifacts.load_tokenizer(workdir)
    khqe, item_codes, query_codes = artifacts.load_sids(workdir)
    vocab = SidVocab(tokenizer.get_vocab_size(), khqe.level_sizes)
    config.model.vocab_size = vocab.vocab_size
    builder = sft_tasks.TaskBuilder(
        world,
        tokenizer,
        vocab,
        item_codes,
        query_codes,
        enc_len=int(config.data.enc_len),
        dec_len=int(config.data.dec_len),
        query_keywords=artifacts.load_query_keywords(workdir),
    )
    return world, vocab, item_codes, builder


def run_sft(config, workdir: str, stream=None) -> dict[str, float]:
    """Trains (or resumes) to config.train.steps; returns the last step's train metrics."""
    world, vocab, item_codes, builder = prepare(config, workdir)
    wd.guard_config(workdir, "train", config)
    tasks = builder.build(
        artifacts.load_train_clicks(workdir), artifacts.load_events(workdir, "train")
    )
    for name, t in tasks.items():
        logging.info("task %s: %d examples", name, len(t))
    batches = sft_tasks.MixtureBatches(
        tasks,
        sft_tasks.parse_stages(config.data.stages),
        total_steps=int(config.train.steps),
        batch_size=int(config.train.batch_size),
        seed=int(config.train.seed),
    )
    model = build_model(TransformerConfig(**config.model.to_dict()))

    trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
    events = artifacts.load_events(workdir, "valid", int(config.eval.max_events))
    targets = world_eval.WorldTargets(world, events)
    retriever = None

    def eval_fn(state, step):
        del step
        nonlocal retriever
        if retriever is None:  # one compiled beam search, fed the current params each time
            retriever = SidRetriever(
                model, state.params, vocab, trie, beam_size=int(config.eval.beam_size)
            )
        retriever.params = state.params
        scores = generative_eval.evaluate_events(retriever, builder, events, targets)
        return {k: scores[k] for k in EVAL_KEYS}

    return train_and_record(config, workdir, model, batches, eval_fn, stream, builder.tok)


def train_and_record(config, workdir: str, model, batches, eval_fn, stream=None,
                     tokenizer=None) -> dict:
    """Runs the generic loop (a `minilm` encoder starts from MiniLM's weights, read through
    `tokenizer`) and merges its last train metrics into W/metrics.json."""
    init_params = pretrained_init(model.cfg, tokenizer)
    result = train_loop(config, workdir, model, batches, eval_fn, stream=stream,
                        init_params=init_params)
    summary = {f"train/{k}": v for k, v in result.metrics.items()}
    summary["train/steps"] = result.step
    wd.write_metrics(workdir, "train", summary, config)
    return summary
