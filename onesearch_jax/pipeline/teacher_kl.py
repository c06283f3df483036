"""What the teacher (query + keywords) has to teach the student (query only), measured: on one
day's personalized rows (each clicked or ordered item of an event, as training writes them),
teacher-forced on the item's SID with dropout off, per SID position KL(teacher || student) and
both paths' CE. The self-distillation KL can only pass on what this KL holds on the training
inputs; comparing it with the test day's says whether the teacher knows more where the model
was not fitted.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.data.sft_tasks import clicked_slots, decoder_inputs
from onesearch_jax.model.sid_levels import level_ranges, sid_positions
from onesearch_jax.model.transformer import EncoderDecoder
from onesearch_jax.pipeline.evaluate_run import day_inputs, inference_keywords
from onesearch_jax.pipeline.sft_run import training_keywords
from onesearch_jax.serving import ModelBundle
from onesearch_jax.train.distill import kl_positions
from onesearch_jax.train.distill_losses import kl_per_position

BATCH = 256
TRAFFIC = ("head", "torso", "tail", "unseen")


def position_terms(teacher_lp, student_lp, codes, mask):
    """Per row, summed over its masked SID positions: KL(teacher || student), the student's and
    the teacher's CE on `codes`, and the number of positions (float32 [B] each). Inputs are
    log-probs [B, L, K] over each level's codes (padding at -1e9), codes int [B, L]."""
    mask = mask.astype(jnp.float32)
    kl = kl_per_position(teacher_lp, student_lp)
    pick = lambda lp: -jnp.take_along_axis(lp, codes[..., None], axis=-1)[..., 0]  # noqa: E731
    return {"kl": jnp.sum(kl * mask, 1), "student_ce": jnp.sum(pick(student_lp) * mask, 1),
            "teacher_ce": jnp.sum(pick(teacher_lp) * mask, 1), "positions": jnp.sum(mask, 1)}


def make_row_terms(model: EncoderDecoder, ranges: tuple):
    """Jitted `(params, batch, rng) -> terms` of one batch of teacher / student rows: the
    position_terms with dropout off, and with dropout on as training runs them (`kl_dropout`:
    teacher and student each with its own draw, as the distill step; `kl_student_dropout`: the
    student against itself under two draws, R-Drop's term), summed per row."""
    @jax.jit
    def terms(params, batch, rng):
        targets = batch["dec_targets"]
        sid_at, codes, found = sid_positions(targets, ranges)
        positions, kl_ranges = kl_positions(sid_at, ranges, targets.shape[1],
                                            model.cfg.vocab_size, "targets")

        def log_probs(prefix, key=None):
            return model.apply({"params": params}, batch[f"{prefix}enc_tokens"],
                               batch["dec_inputs"], positions, kl_ranges, train=key is not None,
                               rngs=None if key is None else {"dropout": key},
                               enc_states=batch.get(f"{prefix}enc_states"),
                               method=EncoderDecoder.sid_log_probs)

        mask = found * batch["teacher_mask"][:, None]
        out = position_terms(log_probs("teacher_"), log_probs(""), codes, mask)
        k_teacher, k_student, k_again = jax.random.split(rng, 3)
        student = log_probs("", k_student)
        on = lambda a, b: jnp.sum(kl_per_position(a, b) * mask, 1)  # noqa: E731
        out["kl_dropout"] = on(log_probs("teacher_", k_teacher), student)
        out["kl_student_dropout"] = on(log_probs("", k_again), student)
        return out
    return terms


def day_rows(workdir: str, split: str, max_events: int, bundle: ModelBundle):
    """(TaskArrays of the day's personalized rows with teacher inputs, the event of each row,
    the events' slice masks). Training days read the training keywords the run trained with; the
    valid and test days the keywords written for their queries at inference."""
    world, events, targets, builder = day_inputs(workdir, bundle, split, max_events)
    if split == "train":  # as the run saw them (data.keyword_min_events applied)
        keywords = training_keywords(bundle.config, workdir, world)
    else:
        keywords = inference_keywords(world, workdir, events)
    rows = builder.with_keywords(keywords).personalized(events)
    return rows, clicked_slots(events)[0], targets.slices


def measure(workdir: str, splits, max_events: int) -> dict:
    """{split: {slice: ...}}: per event slice ('all', the world's slices, need queries by
    traffic), the means per SID position of KL(teacher || student), the student's CE, the
    teacher's CE and its gain (student - teacher CE), all with dropout off, and the two KLs
    with dropout on (make_row_terms), with the rows and positions they average over; rows whose
    query has no keywords are left out (their teacher input is the student's). The model is
    loaded and compiled once for every split."""
    bundle = ModelBundle.from_workdir(workdir)
    terms_of = make_row_terms(bundle.model, level_ranges(bundle.vocab.level_offsets,
                                                         bundle.vocab.level_sizes))
    return {split: measure_day(bundle, terms_of, *day_rows(workdir, split, max_events, bundle),
                               what=f"{workdir}: the {split} day")
            for split in splits}


def measure_day(bundle: ModelBundle, terms_of, rows, row_event, slices, what: str) -> dict:
    """measure's numbers for one day's rows (day_rows)."""
    if rows.teacher_mask is None:
        raise ValueError(f"{what}: no keywords for its queries")
    keep = np.nonzero(rows.teacher_mask > 0)[0]
    sums = ("kl", "student_ce", "teacher_ce", "kl_dropout", "kl_student_dropout")
    out = {k: np.zeros(len(keep), np.float64) for k in sums + ("positions",)}
    for lo in range(0, len(keep), BATCH):
        idx = keep[lo:lo + BATCH]
        pad = BATCH - len(idx)
        take = np.concatenate([idx, np.repeat(idx[:1], pad)])  # one compiled shape
        batch = {"enc_tokens": rows.enc[take], "teacher_enc_tokens": rows.teacher_enc[take],
                 "dec_targets": rows.dec[take], "dec_inputs": decoder_inputs(rows.dec[take]),
                 "teacher_mask": np.ones(BATCH, np.float32)}
        if bundle.memory is not None:
            batch = bundle.memory.attach(batch)
        got = jax.device_get(terms_of(bundle.params, batch, jax.random.key(lo)))
        for k in out:
            out[k][lo:lo + len(idx)] = np.asarray(got[k])[:len(idx)]
    events_of = row_event[keep]
    num_events = len(next(iter(slices.values())))
    masks = {"all": np.ones(num_events, bool), **slices}
    if "need" in slices:  # need queries by training-log traffic (where the keywords help)
        masks.update({f"need/{t}": slices["need"] & slices[t] for t in TRAFFIC if t in slices})
    result = {}
    for name, mask in masks.items():
        picked = np.asarray(mask, bool)[events_of]
        positions = out["positions"][picked].sum()
        if positions == 0:
            continue
        mean = {k: float(out[k][picked].sum() / positions) for k in sums}
        result[name] = {**mean, "teacher_gain": mean["student_ce"] - mean["teacher_ce"],
                        "rows": int(picked.sum()), "positions": int(positions)}
    return result
