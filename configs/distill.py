"""OneSearch-V2 variants: the SFT ladder (V1 -> + keyword CoT tasks -> + self-distillation ->
+ R-Drop -> + FGM -> + focal loss) and the direct-CoT variant, as configs.

    python -m experiments.train --config=configs/distill.py:small:sd --workdir=W
    python -m experiments.evaluate --workdir=W                      # SD (S): query only
    python -m experiments.evaluate --workdir=W --keywords=teacher   # SD (T): keywords given

Arg = "<preset>:<rung>". Presets: `small` (world v2 small: frozen MiniLM-L6 states, cached per
text, read by a d=256 decoder of 2 layers whose SID embeddings start at the codebook vectors;
`data.state_cache` shares the cache between workdirs), `tiny_minilm` (the same on the demo's tiny
world with MiniLM SIDs), `small_scratch` (the first ladder's 2+2-layer d=96 model learning
language from scratch, kept for the comparison), `tiny` (from scratch, for tests).
Rungs (RUNGS):
  v1          the V1 SFT stages (configs/sft.py's mixture);
  cot         + the four keyword-CoT tasks and the keyword-input ("RAG") copies of the query ->
              item tasks. This is Base: trained on both inputs, so it can be evaluated with
              keywords given (Base (T)) or not (Base (S));
  sd          + self-distillation (stage "distill": teacher = query + keywords, student = query);
  rdrop       + R-Drop (alpha 0.5);  fgm  + FGM on the embeddings (eps 0.6);
  focal       + focal loss in place of CE (gamma 2);
  sd_ema      SD with an EMA teacher (decay 0.9) instead of the shared weights;
  sd_teacher_ce  SD whose teacher is also trained (teacher CE weight 1);
  the SD sweep (each changes one thing of `sd`; SD_SWEEP): sd_akl03 / sd_akl1 / sd_akl3
              (alpha_KL 0.3 / 1.0 / 3.0), sd_tau2 (tau 2), sd_ema_code (the released code's EMA
              teacher: decay 0.999, no teacher dropout, updated every step = every micro-batch
              at accumulation 1),
              sd_kl2 (KL on the first two SID levels only), sd_kw5 (keywords only for queries
              with >= 5 training events: 28% of world small's logged queries, 86% of their events),
              sd_self (the control: the teacher reads the student's own input, so the KL is
              the student against itself under another dropout draw, on the same rows);
  sd_self_akl1, sd_self_akl3, sd_self_kw5  controls (SD_CONTROLS): that variant's change with the
              teacher reading the student's own input (what the keywords add to that change);
  direct_cot  the model writes the keywords, then the SID (keywords in the output, not the input).
"""
from __future__ import annotations

import copy

import ml_collections

from configs import sft

# One change to `sd` each: (config section, key) -> value.
SD_SWEEP = {
    "sd_akl03": {("distill", "alpha_kl"): 0.3},
    "sd_akl1": {("distill", "alpha_kl"): 1.0},
    "sd_tau2": {("distill", "tau"): 2.0},
    "sd_ema_code": {("distill", "teacher"): "ema", ("train", "ema_decay"): 0.999,
                    ("distill", "teacher_dropout"): False},
    "sd_kl2": {("distill", "kl_levels"): 2},
    "sd_kw5": {("data", "keyword_min_events"): 5},
    "sd_self": {("distill", "teacher_input"): "student"},
    # Past the issue's grid, after alpha_KL 1.0 halved SD (S)'s need gap to Base (T).
    "sd_akl3": {("distill", "alpha_kl"): 3.0},
}
# Controls of a sweep rung (control -> the rung): the same change without the keywords in the
# teacher's input.
CONTROL_PARENTS = {"sd_self_" + r.removeprefix("sd_"): r for r in ("sd_akl1", "sd_kw5", "sd_akl3")}
SD_CONTROLS = {control: {**SD_SWEEP[rung], ("distill", "teacher_input"): "student"}
               for control, rung in CONTROL_PARENTS.items()}
RUNGS = ("v1", "cot", "sd", "rdrop", "fgm", "focal", "sd_ema", "sd_teacher_ce", "direct_cot",
         *SD_SWEEP, *SD_CONTROLS)
LADDER = ("v1", "cot", "sd", "rdrop", "fgm", "focal")
# The rung each one adds to (the ladder's paired comparisons): the ladder is cumulative; the
# teacher variants change SD, direct CoT replaces CoT's tasks.
PARENTS = {**{r: p for p, r in zip(LADDER, LADDER[1:])}, "sd_ema": "sd", "sd_teacher_ce": "sd",
           "direct_cot": "cot", **{r: "sd" for r in SD_SWEEP}, **CONTROL_PARENTS}
PRESETS = ("tiny", "tiny_minilm", "small", "small_scratch")

_MODEL = {
    "tiny": dict(d_model=64, num_heads=4, mlp_dim=256, enc_layers=2, dec_layers=2),
    # The demo's model on the tiny world with MiniLM SIDs: frozen MiniLM states, as `small`.
    "tiny_minilm": dict(d_model=128, num_heads=4, mlp_dim=512, enc_layers=0, dec_layers=2,
                        encoder="frozen_minilm"),
    # Frozen MiniLM-L6 states (cached per text), no adapter layer, a 2-layer decoder whose SID
    # embeddings start at the codebook vectors.
    "small": dict(d_model=256, num_heads=4, mlp_dim=1024, enc_layers=0, dec_layers=2,
                  encoder="frozen_minilm"),
    # The from-scratch model of the first ladder (experiments/results/ladder_small).
    "small_scratch": dict(d_model=96, num_heads=4, mlp_dim=384, enc_layers=2, dec_layers=2),
}
_TRAIN = {
    "tiny": dict(steps=1000, batch_size=64, lr=3e-3, warmup=50, checkpoint_every=250),
    "tiny_minilm": dict(steps=1000, batch_size=64, lr=2e-3, warmup=50, checkpoint_every=250),
    "small": dict(steps=6000, batch_size=128, lr=1e-3, warmup=300, checkpoint_every=1000),
    "small_scratch": dict(steps=2000, batch_size=64, lr=3e-3, warmup=100, checkpoint_every=500),
}

V1_STAGES = [
    dict(name="alignment", fraction=0.3, mixture=dict(item_to_sid=1.0, query_to_category=0.3)),
    dict(name="cooccurrence", fraction=0.3,
         mixture=dict(query_to_item=1.0, qsid_to_item=0.3, item_to_qsid=0.1, item_to_sid=0.3)),
    dict(name="personalization", fraction=0.4,
         mixture=dict(personalized=1.0, query_to_item=0.3, item_to_sid=0.2)),
]
COT_TASKS = dict(query_to_keywords=0.3, qsid_to_keyword_sid=0.1, personal_keywords=0.2,
                 personal_keyword_sid=0.1)
COT_STAGES = [
    dict(name="alignment", fraction=0.3,
         mixture=dict(item_to_sid=1.0, query_to_category=0.3, **COT_TASKS)),
    dict(name="cooccurrence", fraction=0.3,
         mixture=dict(query_to_item=1.0, query_kw_to_item=0.5, qsid_to_item=0.3,
                      item_to_qsid=0.1, item_to_sid=0.3)),
    dict(name="personalization", fraction=0.4,
         mixture=dict(personalized=1.0, personalized_kw=0.5, query_to_item=0.3, item_to_sid=0.2,
                      query_to_keywords=0.1)),
]
DIRECT_COT_STAGES = [
    dict(name="alignment", fraction=0.3,
         mixture=dict(item_to_sid=1.0, query_to_category=0.3, **COT_TASKS)),
    dict(name="cooccurrence", fraction=0.3,
         mixture=dict(query_to_item_cot=1.0, qsid_to_item=0.3, item_to_qsid=0.1,
                      item_to_sid=0.3)),
    dict(name="personalization", fraction=0.4,
         mixture=dict(personalized_cot=1.0, query_to_item_cot=0.3, item_to_sid=0.2)),
]


def get_config(arg: str | None = "tiny:sd") -> ml_collections.ConfigDict:
    preset, _, rung = (arg or "tiny:sd").partition(":")
    rung = rung or "sd"
    if preset not in PRESETS:
        raise ValueError(f"unknown distill preset {preset!r}; valid: {PRESETS}")
    if rung not in RUNGS:
        raise ValueError(f"unknown variant {rung!r}; valid: {RUNGS}")
    c = sft.get_config("tiny")
    c.preset, c.rung = preset, rung
    c.model.update(_MODEL[preset])
    c.model.dropout_rate = 0.1  # R-Drop and the two passes need dropout; every rung gets it
    c.train.update(_TRAIN[preset])
    c.train.eval_every = 0
    c.train.ema_decay = 0.0
    c.train.fgm_epsilon = 0.0
    c.data.enc_len = 96  # the teacher input adds [KW] + up to 16 keyword tokens
    c.data.dec_len = 8
    c.data.state_cache = ""  # frozen_minilm: the state cache folder ("" = W/minilm_states)
    c.data.state_max_len = 32  # word pieces per text span, [CLS] and [SEP] included
    # Memory slots per encoder row (longer rows are cut at the end and counted): the longest V1
    # row is [Q] query [USR] profile [HIST] 5 SIDs, about 57 slots; the keyword span adds ~15.
    c.data.mem_len = 64 if rung in ("v1", "direct_cot") else 80
    # Each stage's batches only as wide as its longest row (data/encoder_memory.py): the item and
    # co-occurrence stages need 40-56 of the 80 slots; the runs archived before 2026-12-05 used
    # 'fixed' (the same model and loss; only the dropout draws differ).
    c.data.mem_width = "stage" if c.model.encoder == "frozen_minilm" else "fixed"
    c.sid_embeddings = "centroids" if c.model.encoder == "frozen_minilm" else "random"
    # Serving: the query embedding's ADC scores added to each SID level's logits (the SID
    # geometry), weighted by the query's training-log traffic (head, torso, tail, unseen): the
    # model alone where the logs know the query well, the geometry more where they do not.
    # Tuned on the valid day of world small (docs/results.md); () = one weight, eval.prior_weight.
    c.eval.prior_weight = 0.0
    c.eval.prior_by_traffic = (0.0, 10.0, 30.0, 30.0) if c.model.encoder == "frozen_minilm" else ()
    # The beams' items ordered by beam score + w * query-title cosine (tail and unseen queries:
    # what the logs cannot teach); tuned on the valid day with the beam below (docs/results.md).
    c.eval.rerank_by_traffic = (0.0, 0.0, 20.0, 20.0) if c.model.encoder == "frozen_minilm" else ()
    c.eval.beam_size = 40 if c.model.encoder == "frozen_minilm" else 32
    c.stage = "sft" if rung in ("v1", "cot", "direct_cot") else "distill"
    stages = {"v1": V1_STAGES, "direct_cot": DIRECT_COT_STAGES}.get(rung, COT_STAGES)
    c.data.stages = copy.deepcopy(stages)  # the config's own: editing it leaves the module's
    c.eval.cot_keyword_len = 0
    if rung == "direct_cot":
        c.data.dec_len = 24  # exactly 16 keyword tokens (EOS-padded), then the SID tokens
        c.eval.cot_keyword_len = 16  # TaskBuilder.keyword_len
        c.model.max_dec_len = 32
    c.distill = ml_collections.ConfigDict(dict(
        alpha_kl=0.1, tau=1.0, alignment="targets", teacher="shared", teacher_ce_weight=0.0,
        teacher_dropout=True, rdrop_alpha=0.0, student_loss="ce", focal_gamma=2.0,
        focal_alpha=1.0, kl_levels=0, teacher_input="keywords"))
    ladder = LADDER.index(rung) if rung in LADDER else None
    if ladder is not None and ladder >= LADDER.index("rdrop"):
        c.distill.rdrop_alpha = 0.5
    if ladder is not None and ladder >= LADDER.index("fgm"):
        c.train.fgm_epsilon = 0.6
    if ladder is not None and ladder >= LADDER.index("focal"):
        c.distill.student_loss = "focal"
    if rung == "sd_ema":
        c.distill.teacher = "ema"
        c.train.ema_decay = 0.9
    if rung == "sd_teacher_ce":
        c.distill.teacher_ce_weight = 1.0
    for (section, key), value in {**SD_SWEEP, **SD_CONTROLS}.get(rung, {}).items():
        c[section][key] = value
    return c
