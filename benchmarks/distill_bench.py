"""Self-distillation costs: the distill step vs the SFT step on the same batch, and serving
latency of V1, the SD student and the direct-CoT variant.

  python -m benchmarks.distill_bench --workdir=W [--preset=small] [--steps=20] [--queries=100]

W is a workdir with a built world and SIDs (vocabulary, trie and real inputs come from it).
Step time: median wall time of `--steps` jitted steps after compilation, one batch of the
distill mixture (teacher input included), every variant's config at `--preset`. Latency: one
query at a time through the retriever each variant serves with (beam `--beam`), median and p95
over `--queries` test-day queries, after an untimed pass over the next `--queries` (the shapes
they need compiled: steady state, not the cold start). Weights are freshly initialised: latency
depends on the architecture and the decoding path, not on what the weights learned. The SD
student is served exactly like V1 (same model, same query-only input, same retriever), so its
row measures the claim "no serving cost"; direct CoT writes 16 keyword tokens before its SID.
"""
from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import app, flags

from configs import distill as distill_configs
from onesearch_jax import artifacts, cli, quiet
from onesearch_jax.data import encoder_memory
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax import sharding
from onesearch_jax.pipeline import sft_run
from onesearch_jax.train import distill, sft_step
from onesearch_jax.train.train_state import create_train_state, setup_train_state


def _median_time(fn, steps: int) -> float:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def step_times(workdir: str, preset: str, steps: int) -> dict:
    config = distill_configs.get_config(f"{preset}:sd")
    world, vocab, _, builder = sft_run.prepare(config, workdir)
    tasks = builder.build(artifacts.load_train_clicks(workdir), artifacts.load_events(workdir, "train"),
                          names=("personalized", "query_to_item"))
    batch = sft_run.sft_tasks.MixtureBatches(
        tasks, sft_run.sft_tasks.parse_stages([dict(name="p", fraction=1.0, mixture=dict(
            personalized=1.0, query_to_item=0.3))]), total_steps=1,
        batch_size=int(config.train.batch_size), seed=0, with_teacher=True).batch(0)
    memory = encoder_memory.for_config(config, builder.tok, workdir)
    if memory is not None:  # a frozen_minilm preset: memory slots + MiniLM states
        batch = memory.attach(batch)
    model = build_model(config.model)
    mesh = sharding.make_mesh(config.mesh.shape)
    out = {}
    factories = {"sft": sft_step.make_train_step,
                 "distill": distill.make_distill_step(vocab)}
    for name, make in factories.items():
        setup = setup_train_state(model, config, mesh)
        state = create_train_state(setup, 0)
        step = make(model, config, setup)
        b = sharding.shard_batch(batch if name == "distill" else
                                 {k: v for k, v in batch.items()
                                  if k in sft_step.BATCH_KEYS + ("enc_states",)},
                                 mesh, setup.rules)
        key = jax.random.key(0)
        holder = {"state": step(state, b, key)[0]}

        def one():
            holder["state"], m = step(holder["state"], b, key)
            return m

        out[f"step_s/{name}"] = _median_time(one, steps)
    out["step_ratio/distill_over_sft"] = out["step_s/distill"] / out["step_s/sft"]
    return out


def latencies(workdir: str, preset: str, queries: int, beam: int) -> dict:
    """Per-query latency of each variant's retriever; the variants take turns on each query,
    so drift of the machine (other jobs, clock boost) falls on all of them alike."""
    events = artifacts.load_events(workdir, "test", 2 * queries)
    queries = min(queries, max(1, len(events["query_id"]) // 2))  # a short test day: half each
    served = {}
    for rung in ("v1", "sd", "direct_cot"):
        config = distill_configs.get_config(f"{preset}:{rung}")
        world, vocab, item_codes, builder = sft_run.prepare(config, workdir)
        model = build_model(config.model)
        mesh = sharding.make_mesh(config.mesh.shape)
        params = create_train_state(setup_train_state(model, config, mesh), 0).params
        trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
        # A frozen_minilm model's latency includes MiniLM on the new query, as served.
        retriever = SidRetriever(model, params, vocab, trie, beam_size=beam, batch_size=1,
                                 cot_keyword_len=int(config.eval.cot_keyword_len),
                                 memory=encoder_memory.for_config(config, builder.tok, workdir))
        enc = builder.personalized_inputs(events["query_id"], events["user_id"], events["history"])
        # Warm-up on the next `queries` events (MiniLM's length buckets compiled as a served
        # model's would be): steady-state latency, not the cold start.
        for i in range(queries, len(enc)):
            retriever.retrieve(enc[i:i + 1])
        served[rung] = (retriever, enc[:queries])
    times: dict[str, list] = {rung: [] for rung in served}
    for i in range(queries):
        for rung, (retriever, enc) in served.items():
            t0 = time.perf_counter()
            retriever.retrieve(enc[i:i + 1])
            times[rung].append(time.perf_counter() - t0)
    out = {}
    for rung, ts in times.items():
        out[f"latency_ms/{rung}/p50"] = 1000 * float(np.median(ts))
        out[f"latency_ms/{rung}/p95"] = 1000 * float(np.percentile(ts, 95))
    out["latency_ratio/sd_over_v1"] = out["latency_ms/sd/p50"] / out["latency_ms/v1/p50"]
    out["latency_ratio/direct_cot_over_v1"] = (out["latency_ms/direct_cot/p50"]
                                               / out["latency_ms/v1/p50"])
    return out


_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir with a built world and SIDs.")
_PRESET = flags.DEFINE_enum("preset", "small", list(distill_configs.PRESETS), "Model preset.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed train steps per stage.")
_QUERIES = flags.DEFINE_integer("queries", 100, "Test queries timed one at a time.")
_BEAM = flags.DEFINE_integer("beam", 32, "Beam width.")
_OUT = flags.DEFINE_string("out", None, "Also write the numbers to this JSON file.")


def main(argv):
    del argv
    quiet.quiet_libraries()
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required")
    result = {**step_times(_WORKDIR.value, _PRESET.value, _STEPS.value),
              **latencies(_WORKDIR.value, _PRESET.value, _QUERIES.value, _BEAM.value)}
    for k, v in result.items():
        print(f"{k:40s} {v:10.4f}")
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    cli.run(main)
