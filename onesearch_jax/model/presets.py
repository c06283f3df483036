"""Named model sizes and the FLOPs count used for MFU.

Presets are plain dicts so they drop straight into an ml_collections config
(`config.model`) and round-trip through the checkpoint metadata as JSON.
`vocab_size` is a placeholder here: the data pipeline sets it to
text tokens + SID tokens.
"""

from __future__ import annotations

import dataclasses

PRESETS: dict[str, dict] = {
    # CPU tests: small enough that a train step compiles in a few seconds.
    "tiny": dict(
        vocab_size=256,
        d_model=64,
        num_heads=4,
        mlp_dim=256,
        enc_layers=2,
        dec_layers=2,
        max_enc_len=128,
        max_dec_len=16,
    ),
    "small": dict(
        vocab_size=8192,
        d_model=256,
        num_heads=4,
        mlp_dim=1024,
        enc_layers=4,
        dec_layers=4,
        max_enc_len=128,
        max_dec_len=16,
    ),
    # Encoder = the pretrained all-MiniLM-L6-v2 (BERT, 6 layers, width 384, loaded at init;
    # MINILM_L6 below), decoder from scratch at the encoder's width. Needs MiniLM's tokenizer.
    "minilm": dict(
        vocab_size=31000,
        d_model=384,
        num_heads=6,
        mlp_dim=1536,
        enc_layers=6,
        dec_layers=4,
        max_enc_len=128,
        max_dec_len=16,
        encoder="minilm",
    ),
    # BART-base-like.
    "base": dict(
        vocab_size=32768,
        d_model=768,
        num_heads=12,
        mlp_dim=3072,
        enc_layers=6,
        dec_layers=6,
        max_enc_len=256,
        max_dec_len=16,
    ),
}


# The architecture of all-MiniLM-L6-v2 (its config.json), fixed by the pretrained weights.
MINILM_L6 = dict(
    hidden_size=384,
    num_layers=6,
    num_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)
ENCODERS = ("scratch", "minilm", "frozen_minilm")
ATTENTION_IMPLS = ("auto", "xla", "cudnn")
DTYPES = ("float32", "bfloat16", "float16")  # model.dtype (compute) and model.param_dtype
FROZEN_STATE_DIM = MINILM_L6["hidden_size"]  # width of the cached states frozen_minilm reads


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of the encoder-decoder (see transformer.py)."""

    vocab_size: int
    d_model: int
    num_heads: int
    mlp_dim: int
    enc_layers: int
    dec_layers: int
    max_enc_len: int = 128
    max_dec_len: int = 16
    head_dim: int | None = None  # None -> d_model // num_heads
    dropout_rate: float = 0.1
    positions: str = "learned"  # 'learned' | 'sinusoidal'
    dtype: str = "float32"  # compute dtype, e.g. 'bfloat16'
    param_dtype: str = "float32"
    # 'auto' (None in older configs): cuDNN flash attention on a GPU in bf16/f16, XLA elsewhere;
    # 'xla' | 'cudnn' to force one (transformer.resolve_attention).
    attention_impl: str | None = "auto"
    # 'scratch': the pre-LN encoder above; 'minilm': MiniLM-L6's post-LN BERT encoder
    # (MINILM_L6; enc_layers must say 6), weights loaded by train/pretrained_init.py;
    # 'frozen_minilm': frozen MiniLM states (cached per text) read by enc_layers adapter layers.
    encoder: str = "scratch"
    # The embedding table (and the logits matmul) has padded_vocab_size rows, vocab_size rounded
    # up to a multiple of this: lane-aligned on TPU/GPU and divisible by a 'tensor' mesh axis.
    # The padding rows are never looked up and the logits are cut back to vocab_size. 1 = none
    # (the default for configs recorded before the option; configs/sft.py sets 128).
    vocab_multiple: int = 1

    @property
    def padded_vocab_size(self) -> int:
        m = int(self.vocab_multiple)
        return -(-int(self.vocab_size) // m) * m

    def __post_init__(self):
        for name in (
            "vocab_size",
            "d_model",
            "num_heads",
            "mlp_dim",
            "dec_layers",
            "max_enc_len",
            "max_dec_len",
            "vocab_multiple",
        ):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"model.{name} must be positive, got {getattr(self, name)}")
        if int(self.enc_layers) < (0 if self.encoder == "frozen_minilm" else 1):
            raise ValueError(f"model.enc_layers must be positive (0 is allowed only for the "
                             f"frozen_minilm encoder's adapter), got {self.enc_layers}")
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by "
                f"num_heads={self.num_heads}; set head_dim explicitly"
            )
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(
                f"model.positions must be 'learned' or 'sinusoidal', got {self.positions!r}"
            )
        if self.encoder not in ENCODERS:
            raise ValueError(f"model.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "minilm":
            if self.enc_layers != MINILM_L6["num_layers"]:
                raise ValueError(f"model.enc_layers={self.enc_layers}, but the minilm encoder has "
                                 f"{MINILM_L6['num_layers']} layers")
            if self.max_enc_len > MINILM_L6["max_position_embeddings"]:
                raise ValueError(f"model.max_enc_len={self.max_enc_len} exceeds MiniLM's "
                                 f"{MINILM_L6['max_position_embeddings']} positions")
        if self.attention_impl is not None and self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"model.attention_impl must be one of {ATTENTION_IMPLS}, got "
                             f"{self.attention_impl!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"model.{name} must be one of {DTYPES}, got "
                                 f"{getattr(self, name)!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"model.dropout_rate must be in [0, 1), got {self.dropout_rate}")

    @property
    def attn_dim(self) -> int:
        """heads * head_dim: width of the q/k/v projections."""
        return self.num_heads * (self.head_dim or self.d_model // self.num_heads)

    @property
    def encoder_dims(self) -> tuple[int, int, int]:
        """(width, attention width, MLP width) of an encoder layer."""
        if self.encoder == "minilm":
            h = MINILM_L6["hidden_size"]
            return h, h, MINILM_L6["intermediate_size"]
        return self.d_model, self.attn_dim, self.mlp_dim

    @classmethod
    def from_dict(cls, d) -> "TransformerConfig":
        """Builds from a dict/ConfigDict, refusing unknown keys by name."""
        d = d.to_dict() if hasattr(d, "to_dict") else dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        return cls(**d)


def get_preset(name: str) -> dict:
    """A copy of the preset's fields; unknown names raise listing valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid: {sorted(PRESETS)}")
    return dict(PRESETS[name])


def train_flops_per_example(cfg: TransformerConfig, enc_len: int, dec_len: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward) per example.

    Counts every matmul (projections, attention scores without a causal discount,
    MLPs, the tied output projection); ignores norms, softmax and embedding lookups.
    """
    d, a, m, v = cfg.d_model, cfg.attn_dim, cfg.mlp_dim, cfg.padded_vocab_size
    s, t = enc_len, dec_len
    ed, ea, em = cfg.encoder_dims
    enc_layer = s * (2 * 4 * ed * ea + 2 * 2 * ed * em) + 2 * 2 * s * s * ea
    enc_proj = s * 2 * ed * d if ed != d else 0
    if cfg.encoder == "frozen_minilm":  # the frozen MiniLM runs once per text, outside the step
        enc_proj = s * 2 * FROZEN_STATE_DIM * d
    dec_layer = (
        t * (2 * 4 * d * a + 2 * 2 * d * m)
        + 2 * 2 * t * t * a  # self-attn + MLP
        + t * 2 * 2 * d * a
        + s * 2 * 2 * d * a  # cross q,o on dec; k,v on enc
        + 2 * 2 * t * s * a
    )  # cross scores and values
    forward = cfg.enc_layers * enc_layer + enc_proj + cfg.dec_layers * dec_layer + t * 2 * d * v
    return 3.0 * forward


def flops_per_token(cfg: TransformerConfig, enc_len: int, dec_len: int) -> float:
    """Training FLOPs per processed token, where tokens = enc_len + dec_len per example."""
    return train_flops_per_example(cfg, enc_len, dec_len) / (enc_len + dec_len)


def param_count(cfg: TransformerConfig) -> int:
    """Number of parameters, for reporting (matches transformer.py's layout)."""
    d, a, m = cfg.d_model, cfg.attn_dim, cfg.mlp_dim
    ln = 2 * d
    attn = 4 * d * a + 2 * a + d  # no key bias
    mlp = 2 * d * m + m + d
    learned = cfg.positions == "learned"
    dec = cfg.dec_layers * (3 * ln + 2 * attn + mlp) + ln + (cfg.max_dec_len * d if learned else 0)
    if cfg.encoder == "minilm":  # BERT: key bias, its own embeddings, post-LN, no final norm
        h, e = MINILM_L6["hidden_size"], MINILM_L6["intermediate_size"]
        layer = 4 * h * h + 4 * h + 2 * h + 2 * h * e + e + h + 2 * h
        table = (cfg.vocab_size + MINILM_L6["max_position_embeddings"]
                 + MINILM_L6["type_vocab_size"]) * h + 2 * h
        enc = cfg.enc_layers * layer + table + (h * d + d if h != d else 0)
    else:
        enc = cfg.enc_layers * (2 * ln + attn + mlp) + ln + (cfg.max_enc_len * d if learned else 0)
        if cfg.encoder == "frozen_minilm":
            enc += FROZEN_STATE_DIM * d + d
    return cfg.padded_vocab_size * d + enc + dec
