"""Real-catalog pipeline end to end on hand-made rows: prepare, train, serve, evaluate, bad input."""

import os

import numpy as np
import pytest

from onesearch_jax import workdir as wd
from onesearch_jax.data.catalog_keywords import CatalogKeywords, build_keyword_vocabulary
from onesearch_jax.data.real_workdir import load_real_catalog
from onesearch_jax.pipeline.real_build import build_real_workdir
from onesearch_jax.data.real_catalog import load_judgments, load_products
from onesearch_jax.data.real_tasks import RealTaskBuilder
from onesearch_jax.pipeline.real_eval import REAL_SYSTEMS, JudgedQueries, evaluate_real_workdir
from onesearch_jax.serving import Searcher
from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.pipeline.real_run import run_real_sft
from real_catalog_data import BRANDS, CATEGORIES, COLORS, make_catalog, tiny_config

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("hd_data")
    products = make_catalog(data)
    workdir = str(tmp_path_factory.mktemp("hd_work"))
    summary = run_real_sft(tiny_config(data), workdir)
    return data, workdir, products, summary


def test_keyword_vocabulary_mines_brands_and_categories():
    titles = [f"{b} {col} {c}" for b in BRANDS for c in CATEGORIES for col in COLORS]
    vocab = build_keyword_vocabulary(titles, min_brand=3, min_category=3)
    assert vocab["acme tools"] == "brand" and "acme" not in vocab  # the two-word brand wins
    assert vocab["dunmore"] == "brand"
    assert vocab["cordless drill"] == "category" and vocab["red"] == "color"
    kw = CatalogKeywords(vocab).flat(["red acme tools cordless drill", "nothing known"])
    assert kw == [["cordless drill", "red", "acme tools"], []]


def test_span_texts_are_title_fragments_and_keywords(tmp_path):
    make_catalog(tmp_path)
    products = load_products(tmp_path / "products.tsv")
    vocab = build_keyword_vocabulary(products.titles, min_brand=3, min_category=3)
    builder = RealTaskBuilder(products.product_ids, products.titles, _WordTok(), SidVocab(100, (4, 3)),
                              np.zeros((len(products.titles), 2), np.int64),
                              CatalogKeywords(vocab), enc_len=8, dec_len=4)
    texts, items = builder.span_texts(spans_per_title=3, seed=0)
    assert len(texts) == 4 * len(products.titles)  # 3 spans + the keyword string, every title
    for text, i in zip(texts, items):
        title = products.titles[i].lower()
        words = text.lower().split()
        assert 2 <= len(words) <= 5
        assert " ".join(words) in title or all(w in title for w in words)
    assert texts[:4] != builder.span_texts(spans_per_title=3, seed=1)[0][:4]
    task = builder.span_to_sid(3)
    assert len(task) == len(texts) and (task.enc[:, 0] == 10).all()  # [Q]: a query's input


class _WordTok:  # a stand-in tokenizer: each word -> a fixed id
    def token_to_id(self, t):
        return {"[Q]": 10, "[TASK_ITEM]": 11, "[TASK_KW]": 12}.get(t)

    def encode_batch(self, texts, add_special_tokens=False):
        class E:
            def __init__(self, t):
                self.ids = [20 + len(w) for w in t.split()]
        return [E(t) for t in texts]


def test_query_to_sid_keeps_relevant_pairs_weighted_by_relevance(tmp_path):
    make_catalog(tmp_path)
    products = load_products(tmp_path / "products.tsv")
    judgments = load_judgments(tmp_path / "judgments_train.tsv", products)
    codes = np.arange(len(products.product_ids))[:, None] % np.array([[4, 3]])
    vocab = SidVocab(100, (4, 3))

    builder = RealTaskBuilder(products.product_ids, products.titles, _WordTok(), vocab, codes,
                              CatalogKeywords({}), enc_len=8, dec_len=4)
    task = builder.query_to_sid(judgments, min_relevance=2.33)
    num_relevant = sum(r >= 2.33 for j in judgments.relevance for r in j.values())
    assert len(task) == num_relevant
    np.testing.assert_allclose(task.weight[:, :2], 1.0)  # relevance 3 -> weight 3/3
    assert (task.weight[:, 2:] == 0).all()
    assert (task.enc[:, 0] == 10).all()  # [Q] first


def test_prepare_reports_malformed_rows_and_builds_sids(trained):
    _, workdir, products, _ = trained
    metrics = wd.read_metrics(workdir)
    assert metrics["products/rows_skipped"] == 1.0  # the one-column row
    assert metrics["train_judgments/rows_skipped"] == 1.0  # the bad relevance
    assert metrics["num_products"] == len(products)
    catalog = load_real_catalog(workdir)
    assert catalog.item_codes.shape == (len(products), 5)
    assert catalog.products.product_ids == [p[0] for p in products]


def test_training_writes_checkpoint_and_periodic_eval(trained):
    _, workdir, _, summary = trained
    assert summary["train/steps"] == 150
    assert os.path.isdir(wd.checkpoint_dir(workdir))
    lines = open(os.path.join(workdir, "metrics.jsonl")).read()
    assert "eval/recall@10" in lines and "eval/valid_sid_rate" in lines


def test_searcher_answers_over_the_whole_catalog(trained):
    _, workdir, products, _ = trained
    searcher = Searcher.from_workdir(workdir)
    known = {p[0] for p in products}
    out = searcher.search(["white ceiling fan", "", "acme tools"], k=5)
    assert len(out[0]) == 5 and set(out[0]) <= known
    assert out[1] == []
    assert len(set(out[2])) == len(out[2]) == 5


def test_evaluate_judgments_scores_every_system_in_one_run(trained, tmp_path):
    data, workdir, _, _ = trained
    m = evaluate_real_workdir(workdir, str(data / "judgments_dev.tsv"), latency_queries=2,
                              systems=REAL_SYSTEMS, embedding_cache=str(tmp_path))
    assert m["num_queries"] == len(CATEGORIES)
    assert m["valid_sid_rate"] == 1.0
    for prefix in ("", "adc/", "adc_dense/", "adc_hybrid/", "bm25/", "rrf_bm25/", "dense/",
                   "rrf_bm25_dense/", "hybrid/", "rrf_all/"):
        for name in ("recall@10", "recall@100", "ndcg@10", "mrr@10", "hr@10"):
            assert 0.0 <= m[prefix + name] <= 1.0
        assert m[prefix + "latency_ms"] > 0
    # Every dev target is one of 12 products of its category; with 60 products in all,
    # recall@100 of the whole catalog is 1 for any system that lists the catalog.
    assert m["bm25/hr@10"] == 1.0  # "black ceiling fan" matches its titles word for word
    assert isinstance(m["examples"], list)
    with pytest.raises(ValueError, match="splade"):
        evaluate_real_workdir(workdir, str(data / "judgments_dev.tsv"),
                              systems=("generative", "splade"))


def test_untrained_catalog_serves_through_adc_alone(tmp_path):
    """A prepared, never trained catalog: ADC over its SIDs (and re-ranked by dense) scores;
    the systems that need a model are refused by name."""
    make_catalog(tmp_path)
    workdir = str(tmp_path / "w")
    build_real_workdir(tiny_config(tmp_path), workdir)
    systems = ("adc", "adc_dense", "adc_hybrid", "dense", "hybrid")
    m = evaluate_real_workdir(workdir, str(tmp_path / "judgments_dev.tsv"), latency_queries=1,
                              systems=systems, embedding_cache=str(tmp_path / "cache"),
                              beam_size=8)
    assert m["adc/valid_sid_rate"] == 1.0
    for prefix in ("adc/", "adc_dense/", "adc_hybrid/", "hybrid/"):
        assert 0.0 <= m[prefix + "recall@10"] <= 1.0 and m[prefix + "latency_ms"] > 0
    # Re-ranking the beams' items by a scorer cannot beat ranking the whole catalog by it at
    # depth 100 (all 60 products): recall@100 is the share of targets among the candidates.
    assert m["adc_dense/recall@100"] <= m["dense/recall@100"] + 1e-9
    assert m["adc_hybrid/recall@100"] <= m["hybrid/recall@100"] + 1e-9
    # Cells of the first SID level hold every item of the beams' own SIDs and more.
    cells = evaluate_real_workdir(workdir, str(tmp_path / "judgments_dev.tsv"),
                                  latency_queries=0, systems=("adc_hybrid",), cell_level=1,
                                  embedding_cache=str(tmp_path / "cache"), beam_size=8)
    assert cells["adc_hybrid/recall@100"] >= m["adc_hybrid/recall@100"] - 1e-9
    with pytest.raises(ValueError, match="no trained model"):
        evaluate_real_workdir(workdir, str(tmp_path / "judgments_dev.tsv"),
                              systems=("generative",))


def test_real_baselines_score_bm25_dense_and_their_fusion(tmp_path):
    from experiments.real_baselines import run_baselines

    make_catalog(tmp_path)
    products = load_products(tmp_path / "products.tsv")
    judged = JudgedQueries.load(str(tmp_path / "judgments_dev.tsv"), products, 2.67)
    m = run_baselines(products.product_ids, products.titles, judged,
                      ("bm25", "dense", "rrf_bm25_dense"), "hash", str(tmp_path / "cache"),
                      latency_queries=2)
    assert m["bm25/hr@10"] == 1.0 and m["num_queries"] == len(CATEGORIES)
    for system in ("bm25", "dense", "rrf_bm25_dense"):
        assert 0.0 <= m[f"{system}/recall@100"] <= 1.0 and m[f"{system}/latency_ms"] > 0
    assert os.listdir(tmp_path / "cache")  # title embeddings cached for the next run


def test_bad_input_is_named(tmp_path, trained):
    data, workdir, _, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="products.tsv"):
        build_real_workdir(tiny_config(empty), str(tmp_path / "w"))
    with pytest.raises(ValueError, match="data_dir is empty"):
        build_real_workdir(tiny_config(""), str(tmp_path / "w2"))
    other = tiny_config(data)
    other.keywords.min_brand = 7
    with pytest.raises(ValueError, match="keywords.min_brand"):
        build_real_workdir(other, workdir)
    world_like = str(tmp_path / "not_real")
    os.makedirs(world_like)
    with pytest.raises(FileNotFoundError):
        evaluate_real_workdir(world_like, str(data / "judgments_dev.tsv"))


def test_a_prepared_catalog_is_not_reused_after_its_input_files_changed(tmp_path, trained):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(trained[0], data)
    workdir = str(tmp_path / "w")
    assert build_real_workdir(tiny_config(data), workdir)  # prepared
    assert build_real_workdir(tiny_config(data), workdir) == {}  # reused
    products = (data / "products.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "products.tsv").write_text("".join(products[:-5]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"products.tsv changed since .* was prepared"):
        build_real_workdir(tiny_config(data), workdir)


def test_an_unusable_dev_file_says_how_to_train_without_it(tmp_path, trained):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(trained[0], data)
    (data / "judgments_dev.tsv").write_text("query\tproduct_uid\trelevance\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no query in .*judgments_dev.tsv.*"
                                         r"--config.eval.judgments=''"):
        run_real_sft(tiny_config(data), str(tmp_path / "w"))
