"""The V1 SFT run on a real catalog with judgments (configs/homedepot.py): prepare the workdir,
build the real tasks, train with the generic loop, evaluate on held-out judgments periodically."""
from __future__ import annotations

import os

from absl import logging

from onesearch_jax import distributed
from onesearch_jax import workdir as wd
from onesearch_jax.data import encoder_memory, sft_tasks
from onesearch_jax.data.real_workdir import load_real_catalog
from onesearch_jax.pipeline.real_build import build_real_workdir
from onesearch_jax.data.real_tasks import REAL_TASKS, real_builder
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.transformer import build_model
from onesearch_jax.pipeline.sft_run import (cache_states, record_state_cache_whole, task_rows,
                                            train_and_record)
from onesearch_jax.train.stage_spec import SPECS

SID_EMBEDDINGS = ("random", "centroids")
EVAL_KEYS = ("recall@10", "recall@100", "ndcg@10", "mrr@10", "valid_sid_rate")


def eval_judgments_path(config) -> str | None:
    path = config.eval.judgments
    if path and not os.path.isabs(path):
        path = os.path.join(config.data_dir, path)
    return path if path and os.path.exists(path) else None


def run_real_sft(config, workdir: str, stream=None) -> dict[str, float]:
    """Prepares (or reuses) the workdir, trains (or resumes) to config.train.steps."""
    from onesearch_jax.pipeline.real_eval import JudgedQueries, evaluate_generative
    from onesearch_jax.serving import ModelBundle

    sid_embeddings = config.get("sid_embeddings", "random")
    if sid_embeddings not in SID_EMBEDDINGS:
        raise ValueError(f"config.sid_embeddings must be one of {SID_EMBEDDINGS}, got "
                         f"{sid_embeddings!r}")
    if config.model.encoder == "minilm" and config.tokenizer != "minilm":
        raise ValueError(f"model.encoder='minilm' reads MiniLM's word pieces, but "
                         f"config.tokenizer={config.tokenizer!r}; set --config.tokenizer=minilm")
    # Process 0 prepares the catalog (or checks it); the others read it once it is there.
    distributed.on_writer_then_all("build_real_workdir", lambda: build_real_workdir(config,
                                                                                 workdir))
    catalog = load_real_catalog(workdir)
    vocab, builder = real_builder(config, catalog)
    config.model.vocab_size = vocab.vocab_size
    record_state_cache_whole(config)
    wd.guard_config(workdir, "train", config, produced=wd.has_checkpoint(workdir))
    tasks = builder.build(catalog.train, float(config.data.min_relevance),
                          spans_per_title=int(config.data.get("spans_per_title", 0)),
                          seed=int(config.train.seed))
    for name, t in tasks.items():
        logging.info("task %s: %d examples", name, len(t))
    batches = sft_tasks.MixtureBatches(
        tasks, sft_tasks.parse_stages(config.data.stages, REAL_TASKS),
        total_steps=int(config.train.steps), batch_size=int(config.train.batch_size),
        seed=int(config.train.seed))
    memory = encoder_memory.for_config(config, catalog.tokenizer, workdir)
    if memory is not None:
        cache_states(memory, task_rows(tasks), stream)
        batches = encoder_memory.with_states(batches, memory)
    model = build_model(TransformerConfig(**config.model.to_dict()))

    eval_fn = None
    path = eval_judgments_path(config)
    if path is None:
        logging.info("no eval judgments (config.eval.judgments=%r): no periodic evaluation",
                     config.eval.judgments)
    else:
        try:
            judged = JudgedQueries.load(path, catalog.products,
                                        float(config.eval.min_relevance),
                                        max_queries=int(config.eval.max_queries))
        except ValueError as e:  # the periodic evaluation's file: say how to go without it
            raise ValueError(f"{e}; it is the periodic evaluation's (config.eval.judgments): "
                             "fix it, or train without it with --config.eval.judgments=''") from e
        bundle = ModelBundle.for_real(config, catalog, model, None, workdir, memory=memory)
        retriever = None

        def eval_fn(state, step):
            del step
            nonlocal retriever
            if retriever is None:  # one compiled beam search, fed the current params each time
                bundle.params = state.params
                retriever = bundle.retriever()
                bundle.params = None  # the next step donates these buffers: keep no reference
            retriever.params = state.params
            scores = evaluate_generative(bundle, retriever, judged)
            return {k: scores[k] for k in EVAL_KEYS}

    extra_init = None
    if sid_embeddings == "centroids":
        from onesearch_jax.model.sid_embed_init import init_sid_embeddings
        extra_init = lambda params: init_sid_embeddings(  # noqa: E731
            params, catalog.khqe, vocab.level_offsets, seed=int(config.train.seed))
    spec = SPECS["sft"]
    return train_and_record(config, workdir, model, batches, eval_fn, stream, catalog.tokenizer,
                            make_step=spec.make_step(vocab),
                            check_batch=spec.batch_checker(config, vocab), extra_init=extra_init)
