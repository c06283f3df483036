"""How well the code uses an accelerator, in one call: training throughput (presets x dtypes x
two batch sizes, with the compiled step's cost analysis and HLO summary), SID decoding against
the PyTorch peer on the same device (`benchmarks.decode_bench`), and the AOT estimates for Cloud
TPU v5e / v5p (`experiments.aot_compile`, through libtpu on the host CPU). Writes
`accelerator_suite.json` and `accelerator_suite.md` to --out_dir; a part that did not run (no
torch for the peer, no libtpu, the time budget spent) is written as unmeasured, never guessed.

    python -m benchmarks.accelerator_suite --out_dir=OUT                 # one GPU: <= 6 min
    python -m benchmarks.accelerator_suite --smoke --out_dir=OUT         # CPU, about a minute
    python -m benchmarks.accelerator_suite --aot --aot_json=aot.json ... # + the TPU estimates

The MFU column divides by the device's dense bf16 peak (`PEAKS`) for both dtypes, as the
issue's table does; on a device not in the table it is left empty.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import train_throughput
from onesearch_jax import cli, fileio, quiet

# Dense bf16 peak FLOP/s per device, by a substring of jax's device_kind.
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12,
         "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v5": 459e12,
         "TPU v4": 275e12, "TPU v6": 918e12}
# The first `first` training rows (the issue's figures: small and base at batch 256) run before
# decoding, the rest after it: a GPU's first-step compiles (autotuning, ~40 s each on the H200)
# may spend the budget before the end.
FULL = dict(train=[("small", 256), ("base", 256), ("small", 1024), ("base", 64)],
            dtypes=("bfloat16", "float32"), steps=30, first=4,
            decode=["--settings=1x16,1x128,64x16,64x128", "--repeats=5", "--big_repeats=2"],
            # On a GPU the bf16 rows run cuDNN's attention and the stacked gradient norm (both
            # 'auto'); these rerun in bf16 with one of the two turned off: (preset, batch,
            # attention, grad_norm).
            gpu_ab=[("small", 256, "xla", "auto"), ("base", 256, "xla", "auto"),
                    ("small", 256, "auto", "per_leaf")],
            aot=dict(preset="base", batch=256, topologies="v5e:2x2,v5p:2x2x1"))
SMOKE = dict(train=[("tiny", 8), ("tiny", 16)], dtypes=("bfloat16", "float32"), steps=3, first=2,
             gpu_ab=[("tiny", 8, "xla", "auto"), ("tiny", 8, "auto", "per_leaf")],
             decode=["--items=2000", "--settings=1x4", "--repeats=1", "--no_peer"],
             aot=dict(preset="tiny", batch=16, topologies="v5e:2x2"))


def define_flags():
    """The command line's flags, defined when run as a program only (importing the module, as
    the tests do, defines none: absl's flags are global)."""
    flags.DEFINE_string("out_dir", "", "Write accelerator_suite.json / .md here (required).")
    flags.DEFINE_bool("smoke", False, "Tiny sizes for a CPU check of the whole suite.")
    flags.DEFINE_integer("budget_s", 360, "Skip what is left (reported unmeasured) past this "
                         "many seconds.")
    flags.DEFINE_bool("aot", False, "Compile for TPU v5e / v5p (needs libtpu; minutes for base "
                      "on a small CPU).")
    flags.DEFINE_string("aot_json", "", "experiments.aot_compile's --out: its cached compiles "
                        "are reused, new ones added.")
    flags.DEFINE_string("trace_dir", "", "Write a jax.profiler trace of each training setting "
                        "under this folder.")
    flags.DEFINE_list("parts", ["train", "decode", "aot"], "Which parts to run.")


def peak_flops(device_kind: str) -> float | None:
    """The device's dense bf16 peak, or None for one not in `PEAKS` (a CPU)."""
    for name, peak in PEAKS.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def train_runs(plan: dict, gpu_ab: bool = False) -> list[tuple]:
    """(preset, batch, dtype, attention, grad_norm): the plan's presets x dtypes with 'auto'
    attention and gradient norm, or (`gpu_ab`, for a GPU, where they mean cuDNN in bf16 and the
    stacked norm) its `gpu_ab` rows in bf16, each with one of those turned off."""
    if gpu_ab:
        return [(p, b, "bfloat16", a, n) for p, b, a, n in plan["gpu_ab"]]
    return [(p, b, d, "auto", "auto") for p, b in plan["train"] for d in plan["dtypes"]]


def train_rows(runs: list[tuple], steps: int, deadline: float, trace_dir: str) -> list[dict]:
    rows = []
    for preset, batch, dtype, attention, norm in runs:
        row = {"preset": preset, "batch": batch, "dtype": dtype, "attention": attention,
               "grad_norm": norm}
        if time.monotonic() > deadline:
            rows.append({**row, "unmeasured": "time budget spent"})
            continue
        name = (f"{preset}_b{batch}_{dtype}" + ("" if attention == "auto" else f"_{attention}")
                + ("" if norm == "auto" else f"_{norm}"))
        trace = os.path.join(trace_dir, name) if trace_dir else ""
        r = {"grad_norm": norm,  # measure() reports it resolved for the device
             **train_throughput.measure(preset, batch, 32, 6, steps, dtype, hlo=True,
                                        trace_dir=trace, attention=attention, grad_norm=norm)}
        peak = peak_flops(r["device"])
        r["mfu"] = r["achieved_tflops"] * 1e12 / peak if peak else None
        rows.append(r)
        print(f"train {preset} b{batch} {dtype} {attention} {r['grad_norm']}: "
              f"{r['steps_per_s']:.1f} steps/s, {r['achieved_tflops']:.2f} TFLOP/s"
              + (f" ({r['mfu']:.1%} of peak)" if r["mfu"] is not None else ""), flush=True)
    return rows


def _run_module(args: list[str], env: dict | None = None, timeout: float = 600) -> None:
    """Runs `python -m args...` from the repository root; its output goes to ours."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", *args], cwd=root, check=True, timeout=timeout,
                   env={**os.environ, **(env or {})})


def decode_rows(plan: dict, deadline: float) -> dict:
    args = list(plan["decode"])
    has_peer = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
    if not has_peer and "--no_peer" not in args:
        args.append("--no_peer")
    left = deadline - time.monotonic()
    if left <= 0:
        return {"unmeasured": "time budget spent"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "decode.json")
        _run_module(["benchmarks.decode_bench", *args, f"--out={out}"], timeout=max(left, 60))
        with open(out) as f:
            result = json.load(f)
    if "--no_peer" in args:
        result["peer"] = "unmeasured: " + ("torch/transformers not installed" if not has_peer
                                           else "--no_peer")
    return result


def aot_rows(plan: dict, json_path: str) -> dict:
    if importlib.util.find_spec("libtpu") is None:
        return {"unmeasured": "libtpu is not installed (pip install -e '.[tpu]')"}
    a = plan["aot"]
    path = json_path or os.path.join(tempfile.mkdtemp(), "aot.json")
    _run_module(["experiments.aot_compile", f"--preset={a['preset']}",
                 f"--batch_size={a['batch']}", f"--topologies={a['topologies']}", "--stages=sft",
                 f"--out={path}"], env={"JAX_PLATFORMS": "cpu"}, timeout=3600)
    with open(path) as f:
        return {"rows": list(json.load(f).values()), **a}


def markdown(result: dict) -> str:
    """The suite's tables: training, decoding, TPU estimates."""
    lines = [f"Accelerator suite on {result['device']} (jax {result['jax']}), "
             f"{result['seconds']:.0f} s.", ""]
    train = result.get("train") or []
    if train:
        lines += ["| preset | batch | dtype | attention (cuDNN calls) | gradient norm | steps/s | "
                  "tokens/s | TFLOP/s | of bf16 peak | first step s | unfused ops | "
                  "convert kernels | logits-sized buffers |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in train:
            if "unmeasured" in r:
                lines.append(f"| {r['preset']} | {r['batch']} | {r['dtype']} | {r['attention']} | "
                             f"{r.get('grad_norm', 'per_leaf')} | unmeasured ({r['unmeasured']}) "
                             "| | | | | | | |")
                continue
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
            bufs = ", ".join(f"{k} {v}" for k, v in sorted(r["logits_sized_buffers"].items()))
            lines.append(f"| {r['preset']} | {r['batch']} | {r['dtype']} | {r['attention']} "
                         f"({r.get('cudnn_calls', 0)}) | {r.get('grad_norm', 'per_leaf')} | "
                         f"{r['steps_per_s']:.1f} | "
                         f"{r['tokens_per_s']:,.0f} | "
                         f"{r['achieved_tflops']:.2f} | {mfu} | {r['first_step_s']:.1f} | "
                         f"{r['unfused_ops']} | {r['convert_kernels']} | {bufs or '-'} |")
        lines.append("")
    decode = result.get("decode") or {}
    if decode.get("rows"):
        peer = "peer" not in decode
        lines += ["| decode b x k | ours constrained ms/q | ours free ms/q | constrained / free"
                  " | unfused ops, constrained / free"
                  + (" | peer ms/q | speed-up |" if peer else " |"),
                  "|---|---|---|---|---|" + ("---|---|" if peer else "")]
        for r in decode["rows"]:
            line = (f"| {r['batch']}x{r['beams']} | {r['ours_constrained_ms']:.3f} | "
                    f"{r['ours_free_ms']:.3f} | {r['ours_overhead']:.3f}x | "
                    f"{r['ours_constrained_ops']} / {r['ours_free_ops']} |")
            if peer:
                line += f" {r['peer_constrained_ms']:.2f} | {r['speedup_vs_peer']:.1f}x |"
            lines.append(line)
        if not peer:
            lines.append(f"\nPeer: {decode['peer']}.")
        lines.append("")
    elif decode:
        lines += [f"Decoding: {decode.get('unmeasured', 'not run')}.", ""]
    aot = result.get("aot") or {}
    if aot.get("rows"):
        lines += [f"AOT for Cloud TPU (SFT step, `{aot['preset']}`, global batch {aot['batch']};"
                  " roofline = max(FLOPs / peak, bytes / HBM bandwidth), an upper bound on MFU):",
                  "", "| topology | GiB/chip | ms/step at peak | ms/step roofline | MFU at roofline |",
                  "|---|---|---|---|---|"]
        for r in aot["rows"]:
            mfu = f"{r['mfu_roofline']:.0%}" if r.get("mfu_roofline") is not None else "-"
            lines.append(f"| {r['topology']} | {r['total_bytes'] / 2**30:.2f} | "
                         f"{r['step_seconds_at_peak'] * 1e3:.2f} | "
                         f"{r['step_seconds_roofline'] * 1e3:.2f} | {mfu} |")
    elif aot:
        lines.append(f"AOT for Cloud TPU: {aot.get('unmeasured', 'not run')}.")
    return "\n".join(lines) + "\n"


def run_suite(out_dir: str, *, smoke: bool, budget_s: float, parts, aot: bool,
              aot_json: str = "", trace_dir: str = "") -> dict:
    """Runs the parts within the budget (the plan's `first` training rows, decoding, the other
    training rows, on a GPU the A/B rows, the TPU estimates); writes and returns the result."""
    import jax

    plan = SMOKE if smoke else FULL
    start = time.monotonic()
    deadline = start + budget_s
    result = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
              "jax": jax.__version__, "smoke": smoke}
    runs = train_runs(plan) if "train" in parts else []
    if "train" in parts and result["backend"] == "gpu":  # last: the budget goes to the above
        runs += train_runs(plan, gpu_ab=True)
    if runs:
        result["train"] = train_rows(runs[:plan["first"]], plan["steps"], deadline, trace_dir)
    if "decode" in parts:
        result["decode"] = decode_rows(plan, deadline)
    if runs[plan["first"]:]:
        result["train"] += train_rows(runs[plan["first"]:], plan["steps"], deadline, trace_dir)
    if "aot" in parts:
        result["aot"] = aot_rows(plan, aot_json) if aot else {"unmeasured": "--aot not given"}
    result["seconds"] = time.monotonic() - start
    fileio.makedirs(out_dir)
    fileio.write_json(os.path.join(out_dir, "accelerator_suite.json"), result)
    table = markdown(result)
    with open(os.path.join(out_dir, "accelerator_suite.md"), "w") as f:
        f.write(table)
    return result


def main(argv):
    del argv
    quiet.quiet_libraries()
    f = flags.FLAGS
    if not f.out_dir:
        raise ValueError("--out_dir is required (where accelerator_suite.json/.md go)")
    result = run_suite(f.out_dir, smoke=f.smoke, budget_s=f.budget_s, parts=f.parts, aot=f.aot,
                       aot_json=f.aot_json, trace_dir=f.trace_dir)
    print(markdown(result))


if __name__ == "__main__":
    define_flags()
    cli.run(main)
