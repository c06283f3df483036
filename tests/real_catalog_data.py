"""A hand-made real catalog (60 products, train and dev judgments) and the tiny real-data config
that the real-pipeline tests share (imported through conftest's path entry)."""
import os

from configs import homedepot

BRANDS = ("Acme Tools", "Borealis", "Cobalt Works", "Dunmore")
CATEGORIES = ("Cordless Drill", "Ceiling Fan", "Garden Hose", "Paint Roller", "Door Lock")
COLORS = ("Red", "White", "Black")


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def make_catalog(folder):
    """60 products (brand x category x color), judgments by brand/category/color match."""
    products, uid = [], 1000
    for b in BRANDS:
        for c in CATEGORIES:
            for col in COLORS:
                uid += 1
                products.append((str(uid), f"{b} {col} {c}", b, c, col))
    rows = [(p[0], p[1]) for p in products]
    rows.append(("9999",))  # malformed: one column
    write_tsv(os.path.join(folder, "products.tsv"), ("product_uid", "title"), rows)

    def judged(query, pred):
        out = []
        for p in products:
            rel = 3.0 if pred(p) else 1.0
            out.append((query, p[0], f"{rel:g}"))
        return [r for r in out if r[2] == "3"][:6] + [r for r in out if r[2] == "1"][:2]

    train, dev = [], []
    for c in CATEGORIES:
        train += judged(c.lower(), lambda p, c=c: p[3] == c)
        for col in COLORS[:2]:
            train += judged(f"{col.lower()} {c.lower()}", lambda p, c=c, col=col: p[3] == c and p[4] == col)
        dev += judged(f"{COLORS[2].lower()} {c.lower()}", lambda p, c=c: p[3] == c and p[4] == COLORS[2])
    for b in BRANDS:
        train += judged(b.lower(), lambda p, b=b: p[2] == b)
    train.append(("bad row", "1001", "not-a-number"))  # malformed relevance
    write_tsv(os.path.join(folder, "judgments_train.tsv"), ("query", "product_uid", "relevance"), train)
    write_tsv(os.path.join(folder, "judgments_dev.tsv"), ("query", "product_uid", "relevance"), dev)
    return products


def tiny_config(data_dir, steps=150):
    c = homedepot.get_config("tiny")
    c.data_dir = str(data_dir)
    c.sids.khqe.level_sizes = (8, 4, 4)
    c.sids.khqe.opq_codes = 4
    c.sids.khqe.iters = 5
    c.sids.khqe.opq_iters = 2
    c.keywords.min_brand = 3
    c.keywords.min_category = 3
    c.train.steps = steps
    c.train.batch_size = 32
    c.train.checkpoint_every = steps
    c.train.eval_every = steps
    c.train.log_every = 50
    c.eval.beam_size = 8
    c.eval.max_queries = 5
    # The CPU preset's options, on: doc-as-query spans, centroid-initialised SID rows, the ADC
    # prior and the in-cell dense re-ranking (they must not break the pipeline).
    c.data.spans_per_title = 1
    c.data.stages[0]["mixture"]["span_to_sid"] = 0.5
    c.sid_embeddings = "centroids"
    c.eval.prior_weight = 2.0
    c.eval.rerank = "dense"
    return c
