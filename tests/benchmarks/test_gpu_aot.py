"""benchmarks/gpu_aot.py's table and counts by hand (the compile itself needs the CUDA plugin,
which CI has not: `tests/train/test_aot.py` checks the error that names it)."""
from benchmarks import gpu_aot
from onesearch_jax.train import aot, step_hlo


def test_cudnn_calls_and_program_figures():
    text = """
ENTRY %main (q: bf16[2,4,1,8]) -> bf16[2,4,1,8] {
  %q = bf16[2,4,1,8]{3,2,1,0} parameter(0)
  %a = (bf16[2,4,1,8]{3,2,1,0}, u8[0]{0}) custom-call(%q, %q, %q), custom_call_target="__cudnn$fmhaSoftmax"
  %g = bf16[2,4,1,8]{3,2,1,0} get-tuple-element(%a), index=0
  ROOT %n = bf16[2,4,1,8]{3,2,1,0} negate(%g)
}
"""
    assert step_hlo.cudnn_calls(text) == 1
    p = gpu_aot._program(text, aot.chip_of("h200:1"))
    # 128 bytes an array; the cuDNN call: out + q (once); the negate: out + its input
    assert p["kernels"] == 2 and p["bytes"] == 128 + 128 + 128 + 128
    assert p["roofline_s"] == p["bytes"] / 4.8e12 and p["dot_flops"] == 0


def test_markdown_lists_every_row():
    prog = dict(kernels=10, bytes=2e9, dot_flops=1e12, cudnn_calls=0, roofline_s=1e-3)
    result = {"gpu": "h200", "jax": "0.12", "grad_norm": "stacked",
              "train": [dict(preset="small", batch=256, dtype="bfloat16", attention="auto",
                             temp_bytes=2 ** 30, mfu_roofline=0.5,
                             **{**prog, "cudnn_calls": 24})],
              "configs": [dict(config="distill:small:sd", stage="distill", batch=256,
                               dtype="float32", attention="auto", temp_bytes=2 ** 30, **prog)],
              "decode": [dict(batch=1, beams=16, constrained={**prog, "kernels": 12},
                              free=prog)]}
    md = gpu_aot.markdown(result)
    assert "gradient norm stacked" in md
    assert "gradient norm per_leaf" in gpu_aot.markdown({**result, "grad_norm": "per_leaf"})
    assert "| small | 256 | bfloat16 | auto (24) | 10 | 2.00 | 1.00 | 1.00 | 50% | 1.00 |" in md
    assert "| 1x16 | 12 / 10 | 2000.0 / 2000.0 | 1.000 |" in md
    assert ("| distill:small:sd | distill | 256 | float32 | auto (0) | 10 | 2.00 | 1.00 | 1.00 | "
            "1.00 |") in md
