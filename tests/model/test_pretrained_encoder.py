"""The `minilm` preset: MiniLM's tokenizer at our fixed ids, encoder weights loaded from MiniLM,
its own learning-rate scale, and the promised refusals."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax.training.train_state import TrainState

from onesearch_jax.data import text_tokenizer
from onesearch_jax.data.minilm_tokenizer import minilm_text_tokenizer, pretrained_rows
from onesearch_jax.data.text_tokenizer import TASK_TOKENS
from onesearch_jax.model import presets
from onesearch_jax.train.pretrained_init import init_from_minilm, pretrained_init
from onesearch_jax.model.transformer import EncoderDecoder, build_model
from onesearch_jax.model import minilm
from onesearch_jax.train import step as step_lib
from onesearch_jax.train.sft_step import sft_loss_fn
from onesearch_jax.train.step import frozen_subtrees
from onesearch_jax.train.train_state import make_optimizer

pytest.importorskip(minilm.PACKAGE, reason=minilm.INSTALL_HINT)

SID_TOKENS = 40


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_text_tokenizer(TASK_TOKENS)


@pytest.fixture(scope="module")
def bert():
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(minilm.minilm_model_dir() / "tokenizer.json"))
    tok.no_padding()
    return tok


def small_minilm_config(tokenizer, d_model=64) -> presets.TransformerConfig:
    p = presets.get_preset("minilm")
    p.update(vocab_size=tokenizer.get_vocab_size() + SID_TOKENS, d_model=d_model, num_heads=4,
             mlp_dim=128, dec_layers=1, dropout_rate=0.0)
    return presets.TransformerConfig(**p)


def fresh_params(cfg):
    model = build_model(cfg)
    x = jnp.ones((1, 4), jnp.int32)
    return model, nn.unbox(model.init(jax.random.key(0), x, x))["params"]


def test_tokenizer_keeps_bert_ids_and_puts_specials_at_our_ids(tokenizer, bert, tmp_path):
    for i, tok in enumerate(text_tokenizer.BASE_SPECIAL_TOKENS + TASK_TOKENS):
        assert tokenizer.token_to_id(tok) == i
    assert tokenizer.get_vocab_size() == bert.get_vocab_size() == 30522
    text = "Cordless DeWALT 20V drill, 1/2 in."
    ours = tokenizer.encode(text, add_special_tokens=False)
    theirs = bert.encode(text, add_special_tokens=False)
    assert ours.tokens == theirs.tokens and ours.ids == theirs.ids
    assert tokenizer.encode("[Q] red drill", add_special_tokens=False).tokens[0] == "[Q]"
    path = tmp_path / "tokenizer.json"
    text_tokenizer.save_text_tokenizer(tokenizer, path)
    assert text_tokenizer.load_text_tokenizer(path).encode(text).ids == tokenizer.encode(text).ids

    rows = pretrained_rows(tokenizer)
    assert rows[1] == bert.token_to_id("[UNK]") and rows[bert.token_to_id("[UNK]")] == 1
    assert rows[4] == bert.token_to_id("[SEP]") and rows[5] == bert.token_to_id("[MASK]")
    assert rows[2] == 2  # [BOS] takes over [unused1]'s row
    assert sorted(rows.tolist()) == list(range(30522))  # a permutation: every row used once


def test_bpe_tokenizer_is_refused_for_a_minilm_encoder(tokenizer):
    bpe = text_tokenizer.train_text_tokenizer(["red drill", "white fan"] * 20, vocab_size=60,
                                              extra_special_tokens=TASK_TOKENS)
    with pytest.raises(ValueError, match="not MiniLM's WordPiece"):
        pretrained_init(small_minilm_config(tokenizer), bpe)
    with pytest.raises(ValueError, match="needs the run's tokenizer"):
        pretrained_init(small_minilm_config(tokenizer), None)
    assert pretrained_init(presets.TransformerConfig(**presets.get_preset("tiny")), bpe) is None


def test_loaded_encoder_reproduces_minilm_hidden_states(tokenizer, bert):
    """Our ids through the seq2seq model's encoder == BERT ids through the reference MiniLM."""
    cfg = small_minilm_config(tokenizer, d_model=384)  # no projection: compare states directly
    model, params = fresh_params(cfg)
    loaded = init_from_minilm(params, tokenizer)
    hf_config, reference = minilm.load_minilm_params()
    ref_model = minilm.MiniLMEncoder.from_hf_config(hf_config)
    text = "samsung front load washer 3.7 cu ft"
    words = tokenizer.encode(text, add_special_tokens=False).ids
    ours = jnp.asarray([[6] + words + [4]])  # [Q] ... [SEP]  (our ids)
    # Our [Q] (id 6) is BERT's [unused5] (id 6): the same row. Our [SEP] is 4, BERT's 102.
    theirs = jnp.asarray([[6] + words + [bert.token_to_id("[SEP]")]])
    got, mask = model.apply({"params": loaded}, ours, method=EncoderDecoder.encode)
    want = ref_model.apply(reference, theirs, jnp.ones_like(theirs))
    assert bool(mask.all())
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, rtol=1e-4)

    # The decoder and the SID rows of the encoder's table keep their fresh init.
    np.testing.assert_array_equal(loaded["dec_0"]["self_attn"]["query"]["kernel"],
                                  params["dec_0"]["self_attn"]["query"]["kernel"])
    table = loaded["encoder"]["embeddings"]["word_embeddings"]["embedding"]
    np.testing.assert_array_equal(table[30522:],
                                  params["encoder"]["embeddings"]["word_embeddings"]["embedding"][30522:])
    assert table.shape == (30522 + SID_TOKENS, 384)


def test_pretrained_lr_scale_zero_freezes_the_encoder_in_a_train_step(tokenizer):
    """scale 0: the step neither differentiates nor moves the encoder; the decoder learns."""
    cfg = small_minilm_config(tokenizer)
    model, params = fresh_params(cfg)
    train = ml_collections.ConfigDict(dict(steps=10, warmup=0, lr=1e-2, clip=1.0,
                                           weight_decay=0.01, pretrained_lr_scale=0.0))
    assert frozen_subtrees(train) == ("encoder",)
    state = TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(train))
    batch = dict(enc_tokens=jnp.asarray([[6, 2417, 12913, 0]]),
                 dec_inputs=jnp.asarray([[2, 30522, 30530]]),
                 dec_targets=jnp.asarray([[30522, 30530, 30540]]),
                 dec_weights=jnp.ones((1, 3), jnp.float32))
    step = jax.jit(functools.partial(step_lib.train_step, loss_fn=sft_loss_fn(model),
                                     frozen=frozen_subtrees(train)))
    new, metrics = step(state, batch, jax.random.key(0))
    assert np.isfinite(float(metrics["loss"]))
    same = jax.tree.map(lambda a, b: bool((a == b).all()), new.params, params)
    assert all(jax.tree.leaves(same["encoder"]))
    assert not all(jax.tree.leaves(same["dec_0"]))
    with pytest.raises(ValueError, match="pretrained_lr_scale"):
        make_optimizer(ml_collections.ConfigDict({**train.to_dict(), "pretrained_lr_scale": -1.0}))


def test_bad_minilm_configs_are_named():
    p = presets.get_preset("minilm")
    with pytest.raises(ValueError, match="model.encoder"):
        presets.TransformerConfig(**{**p, "encoder": "bert-large"})
    with pytest.raises(ValueError, match="enc_layers=4"):
        presets.TransformerConfig(**{**p, "enc_layers": 4})
    with pytest.raises(ValueError, match="max_enc_len=1024"):
        presets.TransformerConfig(**{**p, "max_enc_len": 1024})


def test_param_count_and_flops_cover_the_minilm_encoder(tokenizer):
    for d_model in (64, 384):
        cfg = small_minilm_config(tokenizer, d_model)
        _, params = fresh_params(cfg)
        assert sum(x.size for x in jax.tree.leaves(params)) == presets.param_count(cfg)
    scratch = presets.TransformerConfig(**{**presets.get_preset("small"), "vocab_size": 31000})
    ours = presets.TransformerConfig(**{**presets.get_preset("minilm"), "vocab_size": 31000})
    # 6 BERT layers at width 384 cost more per token than 4 scratch layers at 256.
    assert presets.flops_per_token(ours, 48, 8) > presets.flops_per_token(scratch, 48, 8)
