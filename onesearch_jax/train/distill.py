"""OneSearch-V2 self-distillation: one set of weights run as teacher (query + keywords) and as
student (query only); the student is pulled toward the teacher on the SID positions.

loss = CE(student) + alpha_kl * tau^2 * KL(softmax(z_T/tau) || softmax(z_S/tau))
  (+ teacher_ce_weight * CE(teacher) + rdrop_alpha * R-Drop; FGM in the generic step;
   focal loss in place of CE).
The KL is averaged over the SID positions of rows whose query has keywords (the first
`distill.kl_levels` levels only, when set); `distill.teacher_input='student'` gives the teacher
the student's own input on those rows (the control: what the KL does without the keywords).
Positions come from the targets (`model.sid_levels.sid_positions`), the distributions are each
level's own token slice in float32 (`EncoderDecoder.level_log_probs_at`), the same
normalisation beam search scores with. `alignment="reference_shift"` reproduces the released
PyTorch code, whose KL appears shifted one position late (it compares full-vocabulary
distributions at the position after each SID token); the default is the correct alignment.
"""
from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.model.sid_levels import level_ranges, sid_positions
from onesearch_jax.model.transformer import EncoderDecoder
from onesearch_jax.train import distill_losses
from onesearch_jax.train import sft_step
from onesearch_jax.train import step as step_lib
from onesearch_jax.train.losses import weighted_cross_entropy

DISTILL_KEYS = sft_step.BATCH_KEYS + ("teacher_enc_tokens", "teacher_mask")
ALIGNMENTS = ("targets", "reference_shift")
TEACHERS = ("shared", "ema")
# The teacher's input: the query + keywords (V2), or the student's own input (a control: the KL
# is then the student against itself under another dropout draw, R-Drop's term, on the same rows).
TEACHER_INPUTS = ("keywords", "student")
STUDENT_LOSSES = ("ce", "focal")
DISTILL_DEFAULTS = dict(alpha_kl=0.1, tau=1.0, alignment="targets", teacher="shared",
                        teacher_ce_weight=0.0, teacher_dropout=True, rdrop_alpha=0.0,
                        student_loss="ce", focal_gamma=2.0, focal_alpha=1.0, kl_levels=0,
                        teacher_input="keywords")


def check_distill_batch(batch) -> None:
    """The SFT contract plus the teacher input (same shape as enc_tokens) and its mask."""
    sft_step.check_batch(batch)
    missing = [k for k in DISTILL_KEYS if k not in batch]
    if missing:
        raise ValueError(f"distill batch is missing keys {missing}; expected {list(DISTILL_KEYS)}")
    if batch["teacher_enc_tokens"].shape[0] != batch["enc_tokens"].shape[0]:
        raise ValueError(f"teacher_enc_tokens {batch['teacher_enc_tokens'].shape} and enc_tokens "
                         f"{batch['enc_tokens'].shape} differ in batch size")


def distill_settings(config) -> dict:
    """config.distill merged over the defaults; unknown keys and bad choices are refused."""
    given = dict(config.get("distill", {}) or {})
    unknown = sorted(set(given) - set(DISTILL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown distill keys {unknown}; valid: {sorted(DISTILL_DEFAULTS)}")
    s = {**DISTILL_DEFAULTS, **given}
    for key, valid in (("alignment", ALIGNMENTS), ("teacher", TEACHERS),
                       ("student_loss", STUDENT_LOSSES), ("teacher_input", TEACHER_INPUTS)):
        if s[key] not in valid:
            raise ValueError(f"distill.{key}={s[key]!r}; valid: {valid}")
    for key in ("alpha_kl", "teacher_ce_weight", "rdrop_alpha", "focal_gamma"):
        if float(s[key]) < 0:  # a negative weight would reward the opposite
            raise ValueError(f"distill.{key} must be >= 0, got {s[key]}")
    if float(s["tau"]) <= 0:
        raise ValueError(f"distill.tau must be > 0 (a softmax temperature), got {s['tau']}")
    if int(s["kl_levels"]) < 0:
        raise ValueError(f"distill.kl_levels must be >= 0 (0 = every SID level), got "
                         f"{s['kl_levels']}")
    if s["teacher"] == "ema" and float(s["teacher_ce_weight"]) > 0:
        raise ValueError("distill.teacher='ema' cannot train the teacher (teacher_ce_weight > 0)")
    if s["teacher"] == "ema" and float(config.train.get("ema_decay", 0.0)) <= 0:
        raise ValueError("distill.teacher='ema' needs train.ema_decay > 0 (e.g. 0.9)")
    return s


def kl_positions(positions, ranges, length: int, vocab_size: int, alignment: str):
    """(positions int[B,L], ranges) the KL is taken on, from the SID positions of the targets."""
    if alignment == "reference_shift":
        return (jnp.minimum(positions + 1, length - 1),
                tuple((0, int(vocab_size)) for _ in ranges))
    return positions, ranges


def first_levels(depth: int, kl_levels: int):
    """float32[L]: 1 on the SID levels the KL covers (the first `kl_levels`; 0 = all)."""
    n = depth if kl_levels <= 0 else min(kl_levels, depth)
    return (jnp.arange(depth) < n).astype(jnp.float32)


def distill_loss(params, batch, rng, *, model: EncoderDecoder, ranges: tuple, settings: dict,
                 teacher_params=None):
    """(loss, metrics) of one self-distillation step (pure; `teacher_params` = EMA teacher)."""
    s = settings
    k_student, k_teacher, k_rdrop = jax.random.split(rng, 3)
    targets, weights = batch["dec_targets"], batch["dec_weights"]
    sid_at, codes, found = sid_positions(targets, ranges)
    positions, kl_ranges = kl_positions(sid_at, ranges, targets.shape[1], model.cfg.vocab_size,
                                        s["alignment"])
    at = jnp.take_along_axis(weights, sid_at, axis=1) > 0
    sid_mask = found * at.astype(jnp.float32)
    kl_mask = (sid_mask * batch["teacher_mask"][:, None].astype(jnp.float32)
               * first_levels(len(ranges), int(s["kl_levels"]))[None, :])

    def student(key):
        logits, lp = model.apply({"params": params}, batch["enc_tokens"], batch["dec_inputs"],
                                 positions, kl_ranges, train=True, rngs={"dropout": key},
                                 enc_states=batch.get("enc_states"), f32_logits=False,
                                 method=EncoderDecoder.logits_and_sid_log_probs)
        if s["student_loss"] == "focal":
            log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
            ce, m = distill_losses.focal_loss(log_probs, targets, weights,
                                              gamma=float(s["focal_gamma"]),
                                              alpha=float(s["focal_alpha"]))
        else:
            ce, m = weighted_cross_entropy(logits, targets, weights)
        return ce, m, lp

    ce, metrics, s_lp = student(k_student)
    metrics = {"ce": ce, "accuracy": metrics["accuracy"], "nll": metrics["nll"],
               "num_tokens": metrics["num_tokens"], "weight_sum": metrics["weight_sum"]}
    loss = ce
    if float(s["rdrop_alpha"]) > 0:
        ce2, _, s_lp2 = student(k_rdrop)
        rdrop = distill_losses.symmetric_kl(s_lp, s_lp2, sid_mask)
        loss = 0.5 * (ce + ce2) + float(s["rdrop_alpha"]) * rdrop
        metrics["rdrop"] = rdrop

    t_params = params if teacher_params is None else jax.lax.stop_gradient(teacher_params)
    teacher_train = bool(s["teacher_dropout"])
    prefix = "teacher_" if s["teacher_input"] == "keywords" else ""
    t_lp = model.apply({"params": t_params}, batch[f"{prefix}enc_tokens"], batch["dec_inputs"],
                       positions, kl_ranges, train=teacher_train,
                       rngs={"dropout": k_teacher} if teacher_train else None,
                       enc_states=batch.get(f"{prefix}enc_states"),
                       method=EncoderDecoder.sid_log_probs)
    kl = distill_losses.tempered_kl(jax.lax.stop_gradient(t_lp), s_lp, kl_mask,
                                    tau=float(s["tau"]))
    loss = loss + float(s["alpha_kl"]) * kl
    if s["alignment"] == "targets":  # teacher CE on the SID codes (logged; trained if weighted)
        t_ce, t_m = distill_losses.sid_cross_entropy(t_lp, codes, sid_mask)
        metrics.update(teacher_ce=t_ce, teacher_accuracy=t_m["accuracy"])
        if float(s["teacher_ce_weight"]) > 0:
            loss = loss + float(s["teacher_ce_weight"]) * t_ce
    metrics.update(loss=loss, kl=kl, kl_positions=jnp.sum(kl_mask))
    return loss, metrics


def distill_loss_fn(model: EncoderDecoder, ranges: tuple, settings: dict) -> Callable:
    """The distill stage's `loss_fn(params, batch, rng[, teacher_params])`."""
    return functools.partial(distill_loss, model=model, ranges=ranges, settings=settings)


def make_distill_step(vocab: SidVocab) -> Callable:
    """A `make_step(model, config, setup)` factory for the loop (the SID layout is the data's)."""
    ranges = level_ranges(vocab.level_offsets, vocab.level_sizes)

    def make_step(model: nn.Module, config, setup) -> Callable:
        settings = distill_settings(config)
        inputs = step_lib.ema_teacher_inputs if settings["teacher"] == "ema" else None
        return step_lib.make_train_step(config, setup, distill_loss_fn(model, ranges, settings),
                                        state_inputs=inputs)

    return make_step
