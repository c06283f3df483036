"""World evaluation on a hand-made 6-item world: targets, slices, negation violations."""
import types

import numpy as np
import pytest

from onesearch_jax.eval import world_eval

TIERS = {0: np.array([3, 3, 2, 0, 0, 1], np.int8),   # query 0: "tea without sugar"
         1: np.array([0, 0, 0, 3, 2, 0], np.int8)}   # query 1: "red mug"
SUGAR = np.array([False, False, True, True, False, False])


class FakeCatalog:
    components = np.where(SUGAR, 1 << 4, 1 << 2).astype(np.int32)  # sugar is component 4
    leaf = np.zeros(6, np.int32)

    def __len__(self):
        return 6


def fake_world():
    queries = types.SimpleNamespace(
        slice=np.array(["tail", "head"]), qtype=np.array(["negation", "category_attr"]),
        is_typo=np.array([False, False]),
        intents=[types.SimpleNamespace(exclude=(4,), exclude_group=-1),
                 types.SimpleNamespace(exclude=(), exclude_group=-1)])
    return types.SimpleNamespace(queries=queries, catalog=FakeCatalog(),
                                 relevance=lambda q: TIERS[int(q)])


def events():
    return {"query_id": np.array([0, 1]),
            "items": np.array([[2, 0, 3, 5, 1, 4, 0, 0, 0, 0], [3, 4, 0, 1, 2, 5, 0, 0, 0, 0]]),
            "clicks": np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]]),
            "orders": np.zeros((2, 10), np.int8)}


def test_targets_and_scores_match_hand_computation():
    targets = world_eval.WorldTargets(fake_world(), events(), train_clicked_items=np.array([2]))
    assert targets.rel == [{0, 1}, {3}] and targets.click == [{2}, {4}]
    assert targets.slices["tail"].tolist() == [True, False]
    assert targets.slices["negation"].tolist() == [True, False]
    assert targets.slices["cold"].tolist() == [False, True]   # item 4 never clicked in training
    ranked = [[3, 0, 2], [4, 3]]
    m = world_eval.score_rankings(targets, ranked)
    assert m["rel_hr@10"] == 1.0
    assert m["rel_mrr@10"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["rel_precision@10/negation"] == pytest.approx(1 / 10)
    assert m["click_hr@10"] == 1.0 and m["click_mrr@10/head"] == 1.0
    assert m["click_mrr@10/tail"] == pytest.approx(1 / 3)
    # Graded NDCG for query 1: gains 2^3-1 at rank 2 and 2^2-1 at rank 1; ideal is 7 then 3.
    dcg = 3 + 7 / np.log2(3)
    ideal = 7 + 3 / np.log2(3)
    assert m["rel_ndcg@10/head"] == pytest.approx(dcg / ideal)
    # Negation query 0: items 3 and 2 contain sugar, item 0 does not.
    assert m["negation_violation@10"] == pytest.approx(2 / 3)


def test_ranked_list_count_must_match_events():
    targets = world_eval.WorldTargets(fake_world(), events())
    with pytest.raises(ValueError, match="1 ranked lists for 2 events"):
        world_eval.score_rankings(targets, [[1]])


def test_results_table_has_a_row_per_system_present():
    from onesearch_jax.eval.world_eval import results_table

    lines = results_table({"rel_hr@10": 0.9, "teacher/rel_hr@10": 0.5}).splitlines()
    assert [line.split("  ")[0] for line in lines[1:]] == ["OneSearch V1", "+ teacher keywords"]
    assert "0.5000" in lines[2] and "nan" in lines[2]  # columns it lacks print nan


def test_results_table_names_the_workdirs_model_by_its_config():
    from onesearch_jax.eval.world_eval import model_label, results_table, workdir_systems

    assert model_label(None) == model_label({"stage": "sft", "rung": "v1"}) == "OneSearch V1"
    assert model_label({"stage": "distill", "rung": "sd"}) == "OneSearch distill:sd"
    assert model_label({"stage": "grpo", "rung": "tpma"}) == "OneSearch grpo:tpma"
    table = results_table({"rel_hr@10": 0.9, "bm25/rel_hr@10": 0.5},
                          workdir_systems({"stage": "distill", "rung": "sd_kw5"}))
    head, bm25, ours = table.splitlines()
    assert bm25.startswith("BM25 ") and ours.startswith("OneSearch distill:sd_kw5 ")
    assert len(head) == len(bm25) == len(ours)  # the name column fits the longest name


def test_results_table_says_when_rows_were_scored_on_different_samples():
    from onesearch_jax.eval.world_eval import results_table

    same = {"rel_hr@10": 0.9, "click_count": 578, "bm25/rel_hr@10": 0.5, "bm25/click_count": 578}
    assert len(results_table(same).splitlines()) == 3
    quick = {**same, "click_count": 137}
    assert results_table(quick).splitlines()[-1] == \
        "rows on different samples, click events: BM25 578, OneSearch V1 137"
