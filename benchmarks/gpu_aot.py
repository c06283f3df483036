"""What XLA's GPU compiler makes of our programs, on a machine with no GPU.

The CUDA plugin (`pip install 'jax[cuda12]'`, Python 3.12+ for jax >= 0.11) compiles for an
NVIDIA card it cannot see, from a target description (`train.aot.GPUS`): the accelerator suite's
training steps (same presets, batches, dtypes and 32 + 6 tokens as
`benchmarks.train_throughput`), stage configs' own steps (`--configs`: the pretrained-encoder
model's V1 and self-distillation steps by default) and `benchmarks.decode_bench`'s searches
(100k items, constrained and free). Per program: kernels (each a launch), the bytes they read
and write, matmul FLOPs, cuDNN calls and the roofline time = max(FLOPs / peak, bytes / HBM
bandwidth), a lower bound on the step.

No timing: the compiler runs without autotuning (default GEMM tilings) and a small program's
time is its kernel launches, which only a device measures. What it does show is what the code
asks the GPU to run, so a change is compared kernel for kernel before a device session.

    JAX_PLATFORMS=cpu python -m benchmarks.gpu_aot --gpu=h200 --out_dir=OUT   # ~10 min, 2 cores
"""
from __future__ import annotations

import os
import time

from absl import flags

from onesearch_jax import cli, fileio, quiet

TRAIN = [("small", 256), ("small", 1024), ("base", 64), ("base", 256)]
DTYPES = ("bfloat16", "float32")
DECODE = ["1x16", "1x128", "64x16", "64x128"]
ENC_LEN, DEC_LEN = 32, 6  # benchmarks.train_throughput's, as the accelerator suite runs it
# The pretrained-encoder model's V1 and self-distillation steps (experiments/launch/
# accelerator_ladder.sh trains them at batch 256).
CONFIGS = ["distill:small:v1", "distill:small:sd"]


def define_flags():
    flags.DEFINE_string("gpu", "h200", "The card to compile for (onesearch_jax/train/aot.py GPUS).")
    flags.DEFINE_string("out_dir", None, "Write gpu_aot.json / gpu_aot.md here.")
    flags.mark_flag_as_required("out_dir")
    flags.DEFINE_list("parts", ["train", "configs", "decode"], "Which programs to compile.")
    flags.DEFINE_list("presets", [f"{p}:{b}" for p, b in TRAIN], "preset:batch training rows.")
    flags.DEFINE_list("dtypes", list(DTYPES), "Training compute dtypes.")
    flags.DEFINE_list("settings", DECODE, "Decoding settings, batch x beams.")
    flags.DEFINE_string("attention", "auto", "model.attention_impl of the training steps.")
    flags.DEFINE_enum("grad_norm", "auto", ["auto", "stacked", "per_leaf"], "train.grad_norm of "
                      "the training steps ('auto' is 'stacked' on a GPU; 'per_leaf': optax's).")
    flags.DEFINE_list("configs", CONFIGS, "Stage configs (configs/<module>.py:<arg>) compiled "
                      "as their stage trains them, at --config_batch.")
    flags.DEFINE_integer("config_batch", 256, "Batch of the --configs rows (the accelerator "
                         "ladder's).")
    flags.DEFINE_integer("config_vocab", 3242, "model.vocab_size of the --configs rows (the "
                         "pipeline sets it from the workdir: world small's text tokens + 704 "
                         "SID tokens = 3,242 in the archived pretrained ladder).")


def _program(hlo_text: str, chip) -> dict:
    from onesearch_jax.train import aot, step_hlo
    flops, moved = step_hlo.dot_flops(hlo_text), step_hlo.kernel_bytes(hlo_text)
    return {"kernels": step_hlo.unfused_ops(hlo_text), "bytes": moved, "dot_flops": flops,
            "cudnn_calls": step_hlo.cudnn_calls(hlo_text),
            "roofline_s": aot.roofline_seconds(flops, moved, chip)}


def _compiled_step(stage: str, config, devices, chip) -> dict:
    """A stage's step for `config` compiled for `devices`: its memory, compile time and
    `_program` figures."""
    from onesearch_jax.train import aot

    r = aot.compile_step(stage, config, devices, level_sizes=[512, 128, 64],
                         mesh_shape=(len(devices), 1, 1), return_hlo=True)
    return {"temp_bytes": r["temp_bytes"], "compile_s": r["compile_seconds"],
            **_program(r["hlo_text"], chip)}


def train_row(devices, chip, preset: str, batch: int, dtype: str, attention: str = "auto",
              grad_norm: str = "auto") -> dict:
    """The SFT step `train_throughput` times, compiled for `devices` (one GPU)."""
    from configs.sft import get_config
    from onesearch_jax.model import presets

    config = get_config(preset)
    config.model.dtype, config.model.attention_impl = dtype, attention
    config.train.batch_size, config.train.grad_norm = batch, grad_norm
    config.data.enc_len, config.data.dec_len = ENC_LEN, DEC_LEN
    cfg = presets.TransformerConfig.from_dict(config.model)
    model_flops = presets.flops_per_token(cfg, ENC_LEN, DEC_LEN) * batch * (ENC_LEN + DEC_LEN)
    row = {"preset": preset, "batch": batch, "dtype": dtype, "attention": attention,
           **_compiled_step("sft", config, devices, chip), "model_flops": model_flops}
    row["mfu_roofline"] = model_flops / (row["roofline_s"] * chip.peak_bf16_flops)
    return row


def config_row(devices, chip, spec: str, batch: int, dtype: str, attention: str = "auto",
               vocab: int = 3242, grad_norm: str = "auto") -> dict:
    """A stage config's own step ('distill:small:sd' = configs/distill.py:small:sd), compiled
    for `devices` at `batch`: the model a ladder trains, inputs and losses included."""
    import importlib

    module, _, arg = spec.partition(":")
    config = importlib.import_module(f"configs.{module}").get_config(arg)
    config.model.dtype, config.model.attention_impl = dtype, attention
    config.model.vocab_size, config.train.batch_size = vocab, batch
    config.train.grad_norm = grad_norm
    stage = config.get("stage", "sft")
    return {"config": spec, "stage": stage, "batch": batch, "dtype": dtype,
            "attention": attention, **_compiled_step(stage, config, devices, chip)}


def decode_rows(device, chip, settings) -> list[dict]:
    """`decode_bench`'s cached searches (its model, 100k items), constrained and free."""
    import jax
    import numpy as np
    from benchmarks import decode_bench as db
    from onesearch_jax.model.transformer import build_model, target_platform
    from onesearch_jax.sid.trie import SidTrie
    from onesearch_jax.sid.vocab import SidVocab

    on_gpu = jax.sharding.SingleDeviceSharding(device)

    def abstract(tree):
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=on_gpu),
                            tree)

    vocab = SidVocab(db.TEXT_VOCAB, db.LEVEL_SIZES)
    trie = SidTrie.build(db.make_codes(100_000), db.LEVEL_SIZES)
    model = build_model(db.model_config(vocab.vocab_size))
    enc0 = db.queries(2, 0)
    params = jax.jit(model.init)(jax.random.key(0), enc0, enc0[:, :5])["params"]
    rows = []
    for setting in settings:
        batch, beams = (int(x) for x in setting.split("x"))
        row = {"batch": batch, "beams": beams}
        for name, tr in (("constrained", trie), ("free", None)):
            search = db.make_search(model, vocab, beams, cached=True)
            start = time.perf_counter()
            with target_platform(device.platform):
                lowered = search.lower(abstract(params), None if tr is None else abstract(tr),
                                       abstract(db.queries(batch, 0)))
            compiled = lowered.compile()
            row[name] = {**_program(compiled.as_text(), chip),
                         "compile_s": time.perf_counter() - start}
        rows.append(row)
        print(f"decode {setting}: kernels {row['constrained']['kernels']} constrained, "
              f"{row['free']['kernels']} free", flush=True)
    return rows


_STEP_COLUMNS = ["attention (cuDNN calls)", "kernels", "GB moved", "matmul TFLOPs", "ms roofline"]


def _step_table(rows: list[dict], lead: list[str], tail: list[tuple]) -> list[str]:
    """Markdown lines: the `lead` keys of each row, its step figures, then the `tail` columns
    ((header, row -> cell))."""
    head = lead + _STEP_COLUMNS + [h for h, _ in tail]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        step = (f"{r['attention']} ({r['cudnn_calls']}) | {r['kernels']} | "
                f"{r['bytes'] / 1e9:.2f} | {r['dot_flops'] / 1e12:.2f} | "
                f"{r['roofline_s'] * 1e3:.2f}")
        cells = [str(r[k]) for k in lead] + [step] + [cell(r) for _, cell in tail]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _temp_gib(r: dict) -> str:
    return f"{r['temp_bytes'] / 2 ** 30:.2f}"


def markdown(result: dict) -> str:
    norm = result.get("grad_norm", "per_leaf")
    lines = [f"XLA's GPU programs for {result['gpu']} (compiled on a CPU, jax {result['jax']}, no "
             "autotuning; roofline = max(matmul FLOPs / peak, kernel bytes / HBM bandwidth); "
             f"gradient norm {norm}).", ""]
    if result.get("train"):
        lines += _step_table(result["train"], ["preset", "batch", "dtype"],
                             [("MFU at roofline", lambda r: f"{r['mfu_roofline']:.0%}"),
                              ("temp GiB", _temp_gib)])
    if result.get("configs"):
        lines += _step_table(result["configs"], ["config", "stage", "batch", "dtype"],
                             [("temp GiB", _temp_gib)])
    if result.get("decode"):
        lines += ["| decode b x k | kernels constrained / free | MB moved constrained / free | "
                  "ms roofline constrained |", "|---|---|---|---|"]
        for r in result["decode"]:
            c, f = r["constrained"], r["free"]
            lines.append(f"| {r['batch']}x{r['beams']} | {c['kernels']} / {f['kernels']} | "
                         f"{c['bytes'] / 1e6:.1f} / {f['bytes'] / 1e6:.1f} | "
                         f"{c['roofline_s'] * 1e3:.3f} |")
    return "\n".join(lines) + "\n"


def run(gpu: str, out_dir: str, parts, presets, dtypes, settings, attention="auto",
        configs=(), config_batch: int = 256, config_vocab: int = 3242,
        grad_norm: str = "auto") -> dict:
    import jax
    from onesearch_jax.train import aot, global_norm

    devices = aot.topology_devices(f"{gpu}:1")
    chip = aot.chip_of(gpu)
    result = {"gpu": gpu, "jax": jax.__version__,
              "grad_norm": global_norm.resolve(grad_norm, "gpu")}
    if "train" in parts:
        result["train"] = []
        for item in presets:
            preset, batch = item.split(":")
            for dtype in dtypes:
                r = train_row(devices, chip, preset, int(batch), dtype, attention, grad_norm)
                result["train"].append(r)
                print(f"train {preset} b{batch} {dtype}: {r['kernels']} kernels, "
                      f"{r['bytes'] / 1e9:.2f} GB, roofline {r['roofline_s'] * 1e3:.2f} ms",
                      flush=True)
    if "configs" in parts:
        result["configs"] = []
        for spec in configs:
            for dtype in dtypes:
                r = config_row(devices, chip, spec, config_batch, dtype, attention, config_vocab,
                               grad_norm)
                result["configs"].append(r)
                print(f"config {spec} b{config_batch} {dtype}: {r['kernels']} kernels, "
                      f"{r['bytes'] / 1e9:.2f} GB, roofline {r['roofline_s'] * 1e3:.2f} ms",
                      flush=True)
    if "decode" in parts:
        result["decode"] = decode_rows(devices[0], chip, settings)
    fileio.makedirs(out_dir)
    fileio.write_json(os.path.join(out_dir, "gpu_aot.json"), result)
    fileio.write_text(os.path.join(out_dir, "gpu_aot.md"), markdown(result))
    return result


def main(argv):
    del argv
    quiet.quiet_libraries()
    f = flags.FLAGS
    result = run(f.gpu, f.out_dir, f.parts, f.presets, f.dtypes, f.settings, f.attention,
                 f.configs, f.config_batch, f.config_vocab, f.grad_norm)
    print(markdown(result))


if __name__ == "__main__":
    define_flags()
    cli.run(main, compilation_cache=False)  # GPU programs this CPU cannot load
