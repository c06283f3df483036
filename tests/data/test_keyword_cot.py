"""Keyword CoT tasks: the four tasks, the teacher input (student input + [KW] span), the
direct-CoT targets, coverage counts, and the pure keyword functions."""
import numpy as np
import pytest

from onesearch_jax.data import keyword_cot, sft_tasks
from onesearch_jax.data.text_tokenizer import EOS_ID

from tests.data.test_sft_tasks import setup  # noqa: F401  (the module fixture)

FIELDS = {"intent": ["sugar-free chocolate"], "category": ["dark chocolate", "snacks"],
          "attribute": ["sugar-free", "Cocoa Co"], "topic": ["diabetic friendly", "snacks"]}


def test_ordered_keywords_are_distinct_most_specific_first_and_capped():
    assert keyword_cot.ordered_keywords(FIELDS) == [
        "sugar-free chocolate", "dark chocolate", "snacks", "sugar-free", "Cocoa Co"]
    assert keyword_cot.ordered_keywords(FIELDS, limit=2) == ["sugar-free chocolate",
                                                             "dark chocolate"]
    assert keyword_cot.keyword_text(["a", "b c"]) == "a, b c"


def test_keywords_with_traffic_keep_the_queries_logged_often_enough():
    kws = {"red shoes": {"intent": ["shoes"]}, "blue hat": {"intent": ["hat"]},
           "rare thing": {"intent": ["thing"]}}
    counts = {"red shoes": 7, "blue hat": 5, "rare thing": 1}
    assert keyword_cot.keywords_with_traffic(kws, counts, 1) == kws
    assert set(keyword_cot.keywords_with_traffic(kws, counts, 5)) == {"red shoes", "blue hat"}
    assert keyword_cot.keywords_with_traffic(kws, {}, 2) == {}  # never logged: none
    with pytest.raises(ValueError, match="keyword_min_events"):
        keyword_cot.keywords_with_traffic(kws, counts, 0)


def test_personal_keywords_keep_what_the_clicked_item_carries_then_the_users_brands():
    item = ["dark chocolate", "cocoa co", "70% cocoa"]
    assert keyword_cot.personal_keywords(FIELDS, item) == ["dark chocolate", "Cocoa Co"]
    assert keyword_cot.personal_keywords(FIELDS, [], user_brands=["cocoa co"]) == ["Cocoa Co"]
    # Nothing matches: the usual order, capped at 5, never empty.
    assert keyword_cot.personal_keywords(FIELDS, ["socks"]) == keyword_cot.ordered_keywords(FIELDS)
    assert len(keyword_cot.personal_keywords(FIELDS, ["socks"], limit=1)) == 1


@pytest.fixture(scope="module")
def full(setup):  # noqa: F811
    builder, _, events, item_codes, vocab = setup
    b = sft_tasks.TaskBuilder(
        builder.world, builder.tok, vocab, item_codes, np.zeros((len(builder.world.queries), 5),
                                                                int),
        enc_len=64, dec_len=24, query_keywords=builder.query_keywords,
        keyword_sids=lambda texts: np.array([[len(t) % 8, 1, 2, 3, len(t.split(",")) % 4]
                                             for t in texts]),
        item_words=[[builder.world.catalog.titles[i].split()[-1].lower()]
                    for i in range(len(builder.world.catalog))])
    weight = events["clicks"].astype(np.float32) + events["orders"]
    e, p = np.nonzero(weight > 0)
    clicks = {"query_id": events["query_id"][e], "item": events["items"][e, p],
              "weight": weight[e, p]}
    return b, b.build(clicks, events), events, clicks


def test_every_task_is_available_and_built(full):
    b, tasks, _, _ = full
    assert set(tasks) == set(sft_tasks.TASKS)
    for name, t in tasks.items():
        assert len(t) > 0 and t.enc.shape[1] == 64 and t.dec.shape[1] == 24, name


def test_teacher_input_is_the_student_input_plus_the_keyword_span(full):
    b, tasks, events, _ = full
    t = tasks["personalized"]
    kw = b.special["[KW]"]
    with_kw = np.flatnonzero(t.teacher_mask > 0)
    without = np.flatnonzero(t.teacher_mask == 0)
    assert len(with_kw) and (t.enc != kw).all()
    for r in with_kw[:20]:
        span_at = int(np.flatnonzero(t.teacher_enc[r] == kw)[0])
        student = t.enc[r][t.enc[r] > 0]
        teacher = t.teacher_enc[r][t.teacher_enc[r] > 0]
        span_len = len(teacher) - len(student)
        assert span_len > 1
        np.testing.assert_array_equal(np.delete(teacher, range(span_at, span_at + span_len)),
                                      student)
    np.testing.assert_array_equal(t.teacher_enc[without], t.enc[without])
    # The RAG copy holds exactly the keyword rows' teacher inputs.
    assert len(tasks["personalized_kw"]) == len(with_kw)
    cov = b.keyword_coverage(events)
    logged = len(np.unique(events["query_id"]))
    assert cov["keywords/queries_with"] + cov["keywords/queries_without"] == logged


def test_cot_tasks_have_their_targets(full):
    b, tasks, _, _ = full
    kw = tasks["query_to_keywords"]
    assert (kw.enc[:, :2] == [b.special["[TASK_KW]"], b.special["[KW]"]]).all()
    cat = tasks["query_to_category"]
    assert (cat.enc[:, 0] == b.special["[TASK_KW]"]).all() and (cat.enc[:, 1] != b.special["[KW]"]).all()
    lengths = (kw.dec > 0).sum(1)
    assert (kw.dec[np.arange(len(kw)), lengths - 1] == EOS_ID).all()
    sid = tasks["qsid_to_keyword_sid"]
    codes = b.vocab.to_codes(sid.dec[:, :5])
    assert (codes[:, 1:4] == [1, 2, 3]).all()  # from the keyword_sids function given
    personal = tasks["personal_keywords"]
    usr = b.special["[USR]"]
    assert ((personal.enc == usr).sum(1) == 1).all()
    n_kw = np.array([(row > 0).sum() for row in personal.dec])
    assert (n_kw >= 2).all()  # at least one keyword + EOS


def test_direct_cot_targets_put_the_sid_after_exactly_k_keyword_tokens(full):
    b, tasks, _, clicks = full
    t = tasks["query_to_item_cot"]
    k = b.keyword_len
    np.testing.assert_array_equal(b.vocab.to_codes(t.dec[:, k:k + 5]),
                                  b.vocab.to_codes(b.item_tokens[clicks["item"]]))
    assert (t.dec[:, :k] > 0).all()  # keywords, EOS-padded to k
    assert (t.weight[:, :k + 5] > 0).all() and (t.weight[:, k + 5:] == 0).all()
    with pytest.raises(ValueError, match="dec_len"):
        sft_tasks.cot_targets(np.ones((1, 16), np.int32), np.ones((1, 5), np.int32), 20)
