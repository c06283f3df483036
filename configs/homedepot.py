"""OneSearch V1 on a real catalog with human judgments (the generic TSV format), e.g. Home Depot.

Launch (the folder holds products.tsv and judgments_train.tsv, optionally judgments_dev.tsv):
  python -m experiments.train --config=configs/homedepot.py \
      --config.data_dir=../shared/data/homedepot --workdir=W
  python -m experiments.evaluate --workdir=W \
      --judgments=../shared/data/homedepot/judgments_dev.tsv --out=W/dev_metrics.json

Presets (the model and optimiser sizes of configs/sft.py): tiny (CPU tests), small (default),
base, minilm (encoder initialised from the pretrained MiniLM-L6, decoder from scratch, MiniLM's
WordPiece tokenizer; its encoder learns at train.lr * train.pretrained_lr_scale). The first run
prepares W (catalog copy, keyword dictionary, tokenizer, KHQE SIDs of every product from MiniLM
title embeddings, keyword-enhanced); `--config.sids.embedding_cache=DIR`
shares the title embeddings between workdirs (embedding 55k titles takes ~30 min on 2 CPU cores).
Ablations: `--config.sids.keyword_enhance=False` (plain title SIDs).

`frozen`: `cpu` with the pretrained-encoder model (frozen MiniLM-L6 states, cached; see
docs/method.md), `python -m experiments.evaluate --workdir=W --judgments=... --systems=model_beam,...`
scores the model's own beam search alone.
`cpu`: what trains on 2 CPU cores in under an hour and uses the SID space's geometry (see the
ablation table of docs/real_data.md): a 2+2-layer d=128 model, SID embeddings initialised from the
codebook centroids (`sid_embeddings='centroids'`), doc-as-query title spans
(`data.spans_per_title`, task `span_to_sid`), relevance-aware SIDs (`sids.query_mix=0.5`), the
query embedding's ADC scores added to the decoder's logits (`eval.prior_weight`), a beam of 2,048
whose level-1 cells are the candidates (`eval.cell_level=1`), ranked by cosine + 0.5 x BM25
(`eval.rerank='hybrid'`, `eval.bm25_weight`). Each is an option of every preset (0 / 'random' /
'none' turn it off).
"""
import ml_collections

from configs import sft
from onesearch_jax.sid import codebooks


PRESETS = ("tiny", "small", "base", "minilm", "cpu", "frozen")


def get_config(arg=None) -> ml_collections.ConfigDict:
    name = arg or "small"
    if name not in PRESETS:
        raise ValueError(f"unknown homedepot preset {name!r}; valid: {list(PRESETS)}")
    frozen = name == "frozen"
    cpu = name in ("cpu", "frozen")
    if cpu:
        name = "small"
    c = sft.get_config(name)
    c.stage = "sft_real"
    c.data_dir = ""  # required: folder with products.tsv and judgments_train.tsv
    # 'bpe': trained on titles + train queries (tokenizer_vocab_size); 'minilm': MiniLM's own.
    c.tokenizer = "minilm" if name == "minilm" else "bpe"
    c.tokenizer_vocab_size = 8000 if name != "tiny" else 600
    c.keywords = ml_collections.ConfigDict(dict(min_brand=5, min_category=10))
    c.sids = ml_collections.ConfigDict()
    c.sids.embedder = "minilm" if name != "tiny" else "hash"
    c.sids.keyword_enhance = True
    c.sids.query_mix = 0.0  # > 0: relevance-aware SIDs (item fused with its train queries)
    c.sids.embedding_cache = ""  # default: W/sids
    c.sids.khqe = ml_collections.ConfigDict(codebooks.khqe_preset("small" if name != "tiny" else "tiny")
                                            .to_dict())
    if name != "tiny":
        # Home Depot (54,667 titles, MiniLM, plain title embeddings): 512-128-64 + 2x256 gives
        # ICR 0.759, 256-256-256 + 2x256 gives 0.900 (near-duplicate titles share cells).
        c.sids.khqe.level_sizes = (256, 256, 256)
        c.sids.khqe.opq_codes = 256
    c.sids.khqe.level_sizes = tuple(c.sids.khqe.level_sizes)
    c.data.enc_len = 48
    c.data.dec_len = 8
    c.data.min_relevance = 2.33  # train pairs: judged >= 2.33, weighted by relevance / 3
    c.data.stages = [
        dict(name="alignment", fraction=0.3,
             mixture=dict(title_to_sid=1.0, query_to_keywords=0.2)),
        dict(name="cooccurrence", fraction=0.7,
             mixture=dict(query_to_sid=1.0, title_to_sid=0.5, query_to_keywords=0.05)),
    ]
    c.eval.judgments = "judgments_dev.tsv"  # relative to data_dir; skipped if absent
    c.eval.min_relevance = 2.67
    c.eval.max_queries = 300
    c.eval.beam_size = 128 if name != "tiny" else 16
    c.data.spans_per_title = 0       # doc-as-query spans per title (0: no span_to_sid task)
    c.sid_embeddings = "random"      # 'centroids': SID rows from the KHQE codebooks
    c.eval.prior_weight = 0.0        # > 0: logits + weight * ADC score of the query embedding
    c.eval.rerank = "none"           # 'dense': the beams' items ordered by dense cosine
    c.eval.cell_level = 0            # c > 0: candidates are all items in the beams' depth-c cells
    c.eval.bm25_weight = 0.5         # rerank='hybrid': cosine + weight * BM25 / best BM25
    if cpu:
        c.preset = "cpu"
        c.model.update(d_model=128, num_heads=4, mlp_dim=512, enc_layers=2, dec_layers=2)
        c.train.update(steps=3000, batch_size=128, lr=2e-3, warmup=200, eval_every=3000,
                       checkpoint_every=500)
        c.data.update(enc_len=32, dec_len=6, spans_per_title=2)  # queries and spans are short
        c.data.stages = [
            dict(name="indexing", fraction=0.3, mixture=dict(title_to_sid=1.0, span_to_sid=1.0)),
            dict(name="retrieval", fraction=0.7,
                 mixture=dict(query_to_sid=1.0, span_to_sid=1.0, title_to_sid=0.5)),
        ]
        c.sid_embeddings = "centroids"
        # Tuned on a 300-query dev sample (0, 10, 30, 100): recall@10 rises with the weight, so
        # after 3,000 steps the geometry, not the trained decoder, does most of the ranking.
        c.eval.prior_weight = 100.0
        c.sids.query_mix = 0.5
        # Tuned on dev (docs/real_data.md's table): beam 2,048 keeps 90% of gold SIDs, level-1
        # cells hold every sibling of the beams' items, and the hybrid beats cosine alone.
        c.eval.beam_size = 2048
        c.eval.cell_level = 1
        c.eval.rerank = "hybrid"
    if frozen:
        # `cpu` on the pretrained-encoder model: frozen MiniLM-L6 states of every title, span and
        # query (cached once, data.state_cache shares them), no adapter layer, a d=256 decoder.
        # Measured in docs/real_data.md.
        c.preset = "frozen"
        c.model.update(d_model=256, num_heads=4, mlp_dim=1024, enc_layers=0, dec_layers=2,
                       encoder="frozen_minilm")
        c.data.update(state_cache="", state_max_len=32, mem_len=40)
    return c
