"""Training runs on a world workdir: the task mixture from the world + SIDs, the generic loop,
the eval hook. The SFT and self-distillation stages differ only in their step and in whether
batches carry the teacher input."""

from __future__ import annotations

import os
from typing import Callable

from absl import logging

from onesearch_jax import artifacts, distributed, fileio
from onesearch_jax import workdir as wd
from onesearch_jax.data import encoder_memory, keyword_cot, sft_tasks
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.train.pretrained_init import pretrained_init
from onesearch_jax.model.transformer import build_model
from onesearch_jax.pipeline import keyword_sids
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.train import distill
from onesearch_jax.train.stage_spec import SPECS, StageSpec
from onesearch_jax.train.loop import train_loop
from onesearch_jax.world import text_keywords

EVAL_KEYS = ("rel_hr@10", "click_hr@10", "order_hr@10", "valid_sid_rate")


def stage_task_names(config) -> tuple[str, ...]:
    """Every task a stage of config.data.stages samples (weight > 0)."""
    stages = sft_tasks.parse_stages(config.data.stages)
    return tuple(t for t in sft_tasks.TASKS
                 if any(s.mixture.get(t, 0) > 0 for s in stages))


def training_keywords(config, workdir: str, world) -> dict:
    """The training queries' keywords, cut to config.data.keyword_min_events' coverage."""
    keywords = artifacts.load_query_keywords(workdir)
    min_events = int(config.data.get("keyword_min_events", 1))
    if min_events == 1:
        return keywords
    counts = artifacts.load_query_event_counts(workdir)["train"]
    per_text = {text: int(counts[i]) for i, text in enumerate(world.queries.texts)}
    return keyword_cot.keywords_with_traffic(keywords, per_text, min_events)


def prepare(config, workdir: str):
    """Loads the workdir's data and sizes the model's vocabulary (text + SID tokens)."""
    world = artifacts.load_world(workdir)
    tokenizer = artifacts.load_tokenizer(workdir)
    khqe, item_codes, query_codes = artifacts.load_sids(workdir)
    vocab = SidVocab(tokenizer.get_vocab_size(), khqe.level_sizes)
    config.model.vocab_size = vocab.vocab_size
    names = stage_task_names(config)
    item_words = None
    if any(n in sft_tasks.ITEM_WORD_TASKS for n in names):
        item_words = text_keywords.item_keywords(world.catalog, int(world.config.seed),
                                                 float(world.config.item_keyword_noise))
    builder = sft_tasks.TaskBuilder(
        world,
        tokenizer,
        vocab,
        item_codes,
        query_codes,
        enc_len=int(config.data.enc_len),
        dec_len=int(config.data.dec_len),
        query_keywords=training_keywords(config, workdir, world),
        keyword_sids=keyword_sids.for_workdir(workdir)
        if any(n in sft_tasks.KEYWORD_SID_TASKS for n in names) else None,
        item_words=item_words,
    )
    return world, vocab, item_codes, builder


def record_state_cache_whole(config) -> None:
    """data.state_cache as an absolute path, so a later stage started from another directory
    (an RL run adopting this run's data section) finds the same states."""
    folder = config.data.get("state_cache", "") if "data" in config else ""
    if folder and not fileio.is_remote(folder):
        config.data.state_cache = os.path.abspath(os.path.expanduser(folder))


def run_world(config, workdir: str, *, spec: StageSpec, with_teacher: bool,
              stream=None) -> dict[str, float]:
    """Trains stage `spec` (or resumes it) to config.train.steps; returns the last step's train
    metrics. The step and the batch check come from the spec once the SID layout is known."""
    world, vocab, item_codes, builder = prepare(config, workdir)
    record_state_cache_whole(config)
    wd.guard_config(workdir, "train", config, produced=wd.has_checkpoint(workdir))
    train_events = artifacts.load_events(workdir, "train")
    tasks = builder.build(artifacts.load_train_clicks(workdir), train_events,
                          names=stage_task_names(config))
    for name, t in tasks.items():
        logging.info("task %s: %d examples", name, len(t))
    coverage = builder.keyword_coverage(train_events)
    if with_teacher:
        print(f"keywords: {coverage['keywords/queries_with']:.0f} training queries have them, "
              f"{coverage['keywords/queries_without']:.0f} do not (their teacher input is the "
              f"student's); {coverage['keywords/event_share_with']:.1%} of training events",
              flush=True)
    mixture = sft_tasks.MixtureBatches(
        tasks,
        sft_tasks.parse_stages(config.data.stages),
        total_steps=int(config.train.steps),
        batch_size=int(config.train.batch_size),
        seed=int(config.train.seed),
        with_teacher=with_teacher,
    )
    batches = mixture
    memory = encoder_memory.for_config(config, builder.tok, workdir)
    if memory is not None:
        coverage.update(cache_states(memory, task_rows(tasks, with_teacher), stream))
        batches = encoder_memory.with_states(mixture, memory, memory_widths(config, memory,
                                                                            mixture, stream))
    model = build_model(TransformerConfig(**config.model.to_dict()))
    eval_fn = make_world_eval_fn(config, workdir, world, model, vocab, item_codes, builder,
                                 memory)
    extra_init = None
    if config.get("sid_embeddings", "random") == "centroids":
        from onesearch_jax.model.sid_embed_init import init_sid_embeddings
        khqe = artifacts.load_sids(workdir)[0]
        extra_init = lambda params: init_sid_embeddings(  # noqa: E731
            params, khqe, vocab.level_offsets, seed=int(config.train.seed))
    summary = train_and_record(config, workdir, model, batches, eval_fn, stream, builder.tok,
                               make_step=spec.make_step(vocab),
                               check_batch=spec.batch_checker(config, vocab),
                               extra_init=extra_init)
    if memory is not None:
        coverage["state_cache/truncated_rows"] = float(memory.truncated_rows)
    wd.write_metrics(workdir, "train", coverage, config)
    return summary


def memory_widths(config, memory, mixture, stream=None):
    """`width_at(step)` for data.mem_width='stage' (each stage's batches as wide as its longest
    row), None for 'fixed' (every batch mem_len wide)."""
    if encoder_memory.check_mem_width(config) == "fixed":
        return None
    widths = encoder_memory.stage_widths(memory, mixture)
    print("memory slots per batch: " + ", ".join(f"{k} {v}" for k, v in widths.items())
          + f" (of mem_len {memory.mem_len})", file=stream, flush=True)
    return lambda step: widths[mixture.stage_at(step).name]


def task_rows(tasks, with_teacher: bool = False) -> list:
    """Every encoder row set the batches will carry: the tasks' inputs, and their teacher inputs
    when the stage reads them (V1 rows hold teacher inputs it never uses)."""
    rows = [t.enc for t in tasks.values()]
    if with_teacher:
        rows += [t.teacher_enc for t in tasks.values() if t.teacher_enc is not None]
    return rows


def cache_states(memory, rows, stream=None) -> dict[str, float]:
    """Fills the frozen MiniLM state cache with every text the encoder row sets hold."""
    fill = lambda: encoder_memory.fill_cache(memory, rows)  # noqa: E731
    found = distributed.on_writer_then_all("fill_state_cache", fill)
    if found is None:  # not process 0: its shards when the folder is shared, else our own
        memory.states.cache.refresh()
        found = fill()
    print(f"MiniLM states: {found['state_cache/texts']:.0f} texts, "
          f"{found['state_cache/encoded']:.0f} encoded now "
          f"({found['state_cache/encode_s']:.0f} s), the rest from the cache "
          f"{memory.states.cache.folder}", file=stream, flush=True)
    return found


def make_world_eval_fn(config, workdir: str, world, model, vocab: SidVocab, item_codes,
                       builder, memory=None) -> Callable:
    """The loop's `eval_fn(state, step)`: valid-day world metrics of the current parameters
    (one compiled beam search, built on first use and fed the current params each time)."""
    trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
    events = artifacts.load_events(workdir, "valid", int(config.eval.max_events))
    targets = world_eval.WorldTargets(world, events)
    retriever = None

    def eval_fn(state, step):
        del step
        nonlocal retriever
        if retriever is None:
            retriever = SidRetriever(
                model, state.params, vocab, trie, beam_size=int(config.eval.beam_size),
                cot_keyword_len=int(config.eval.get("cot_keyword_len", 0)), memory=memory)
        retriever.params = state.params
        scores = generative_eval.evaluate_events(retriever, builder, events, targets)
        return {k: scores[k] for k in EVAL_KEYS}

    return eval_fn


def run_sft(config, workdir: str, stream=None) -> dict[str, float]:
    """The SFT stages (V1, and V1 + keyword CoT tasks)."""
    return run_world(config, workdir, spec=SPECS["sft"], with_teacher=False, stream=stream)


def run_distill(config, workdir: str, stream=None) -> dict[str, float]:
    """Self-distillation over the same task mixture (config.distill: see train/distill.py)."""
    distill.distill_settings(config)  # refuse bad keys before any data is built
    return run_world(config, workdir, spec=SPECS["distill"], with_teacher=True, stream=stream)


def train_and_record(config, workdir: str, model, batches, eval_fn, stream=None,
                     tokenizer=None, *, make_step: Callable, check_batch: Callable,
                     extra_init: Callable | None = None) -> dict:
    """Runs the generic loop (a `minilm` encoder starts from MiniLM's weights, read through
    `tokenizer`; `extra_init(params) -> params` then edits a fresh run's parameters) and merges
    its last train metrics into W/metrics.json."""
    init_params = pretrained_init(model.cfg, tokenizer)
    if extra_init is not None:
        first = init_params or (lambda params: params)
        init_params = lambda params: extra_init(first(params))  # noqa: E731
    result = train_loop(config, workdir, model, batches, eval_fn, stream=stream,
                        init_params=init_params, make_step=make_step, check_batch=check_batch)
    summary = {f"train/{k}": v for k, v in result.metrics.items()}
    summary["train/steps"] = result.step
    wd.write_metrics(workdir, "train", summary, config)
    return summary
