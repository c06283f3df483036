"""The accelerator suite's parts: the HLO reading by hand, the peak table, and its --smoke run
end to end on this CPU (the tables it writes, unmeasured parts named)."""
import json
import os

from benchmarks import accelerator_suite
from onesearch_jax.train import step_hlo

# A hand-written optimized module: a bf16 matmul whose [B*T, V] result is converted to f32 by a
# fusion that only converts, then a log-softmax fusion with a convert folded inside, and an
# unfused transpose. B=2, T=3, V=4: 24 logits.
HLO = """
HloModule jit_step, entry_computation_layout={(bf16[6,8]{1,0}, bf16[8,4]{1,0})->f32[]}

%wrapped_convert_computation (param_0: bf16[6,4]) -> f32[6,4] {
  %param_0 = bf16[6,4]{1,0} parameter(0)
  ROOT %convert.1 = f32[6,4]{1,0} convert(%param_0)
}

%fused_softmax (param_0.1: f32[6,4], param_1.1: bf16[6]) -> f32[] {
  %param_0.1 = f32[6,4]{1,0} parameter(0)
  %param_1.1 = bf16[6]{0} parameter(1)
  %convert.2 = f32[6]{0} convert(%param_1.1)
  %broadcast.1 = f32[6,4]{1,0} broadcast(%convert.2), dimensions={0}
  %subtract.1 = f32[6,4]{1,0} subtract(%param_0.1, %broadcast.1)
  %constant.1 = f32[] constant(0)
  ROOT %reduce.1 = f32[] reduce(%subtract.1, %constant.1), dimensions={0,1}, to_apply=%add
}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %sum = f32[] add(%a, %b)
}

ENTRY %main (x: bf16[6,8], w: bf16[8,4]) -> f32[] {
  %x = bf16[6,8]{1,0} parameter(0)
  %w = bf16[8,4]{1,0} parameter(1)
  %dot.1 = bf16[6,4]{1,0} dot(%x, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %wrapped_convert = f32[6,4]{1,0} fusion(%dot.1), kind=kLoop, calls=%wrapped_convert_computation
  %transpose.1 = bf16[8,6]{1,0} transpose(%x), dimensions={1,0}
  %slice.1 = bf16[6]{0} slice(%transpose.1), slice={[0:1], [0:6]}
  ROOT %softmax = f32[] fusion(%wrapped_convert, %slice.1), kind=kLoop, calls=%fused_softmax
}
"""


def test_hlo_summary_by_hand():
    s = step_hlo.hlo_summary(HLO, batch=2, dec_len=3, vocab=4)
    assert s["kernels"]["fusion"] == 2 and s["kernels"]["dot"] == 1
    assert s["kernels"]["transpose"] == 1 and s["kernels"]["convert"] == 0
    assert s["convert_kernels"] == 1  # the fusion that only converts
    assert s["converts_in_fusions"] == 1  # the one folded into the softmax
    assert s["logits_sized_buffers"] == {"bf16": 1, "f32": 1}  # the dot, then its f32 copy
    # dot, the convert fusion, transpose, slice, softmax fusion; the reducer `add` is no kernel
    assert s["unfused_ops"] == 5


def test_heaviest_kernels_by_hand():
    rows = step_hlo.heaviest_kernels(HLO, n=3)
    # dot: 48 out + 96 (x) + 64 (w); transpose: 96 + 96; the convert fusion: 96 + 48.
    assert [(r["name"], r["bytes"]) for r in rows] == [("dot.1", 208), ("transpose.1", 192),
                                                       ("wrapped_convert", 144)]
    assert rows[0]["op"] == "dot" and rows[0]["shape"] == "bf16[6,4]"


def test_kernel_bytes_and_dot_flops_by_hand():
    # dot 208, transpose 192, convert fusion 144, slice 12 + 96, softmax 4 + 96 + 12
    assert step_hlo.kernel_bytes(HLO) == 208 + 192 + 144 + 108 + 112
    assert step_hlo.dot_flops(HLO) == 2 * 6 * 4 * 8  # [6, 8] x [8, 4]


# XLA's GPU program: a dot inside a (Triton) fusion body, a cuBLAS call whose result is (output,
# workspace); FLOPs are counted wherever the matmul sits, its workspace not.
GPU_HLO = """
%gemm_fusion_dot_computation (p0: bf16[16,32], p1: bf16[32,8]) -> bf16[16,8] {
  %p0 = bf16[16,32]{1,0} parameter(0)
  %p1 = bf16[32,8]{1,0} parameter(1)
  ROOT %dot.3 = bf16[16,8]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (a: bf16[16,32], b: bf16[32,8], c: f32[4,5,6], d: f32[6,7]) -> bf16[16,8] {
  %a = bf16[16,32]{1,0} parameter(0)
  %b = bf16[32,8]{1,0} parameter(1)
  %c = f32[4,5,6]{2,1,0} parameter(2)
  %d = f32[6,7]{1,0} parameter(3)
  %gemm = (f32[4,5,7]{2,1,0}, s8[1024]{0}) custom-call(%c, %d), custom_call_target="__cublas$gemm", backend_config={"gemm_backend_config":{"dot_dimension_numbers":{"lhs_contracting_dimensions":["2"],"rhs_contracting_dimensions":["0"]}}}
  ROOT %gemm_fusion = bf16[16,8]{1,0} fusion(%a, %b), kind=kCustom, calls=%gemm_fusion_dot_computation
}
"""


# One leaf's AdamW-like update reading a slice of a stack of three gradients (what the stacked
# clipping norm compiles to, train/global_norm.py): the kernel loads only the third, and the
# second (the sum of a split-K pair) is never computed either.
STACK_HLO = """
%fused (p0: f32[2,3], p1: f32[2,3], p2: f32[2,2,3], p3: f32[2,3], p4: f32[]) -> f32[2,3] {
  %p0 = f32[2,3]{1,0} parameter(0)
  %b0 = f32[1,2,3]{2,1,0} bitcast(%p0)
  %p1 = f32[2,3]{1,0} parameter(1)
  %b1 = f32[1,2,3]{2,1,0} bitcast(%p1)
  %p2 = f32[2,2,3]{2,1,0} parameter(2)
  %zero = f32[] constant(0)
  %r2 = f32[2,3]{1,0} reduce(%p2, %zero), dimensions={0}, to_apply=%add
  %b2 = f32[1,2,3]{2,1,0} bitcast(%r2)
  %stack = f32[3,2,3]{2,1,0} concatenate(%b0, %b2, %b1), dimensions={0}
  %p4 = f32[] parameter(4)
  %s = f32[3,2,3]{2,1,0} broadcast(%p4), dimensions={}
  %scaled = f32[3,2,3]{2,1,0} multiply(%stack, %s)
  %mine = f32[1,2,3]{2,1,0} slice(%scaled), slice={[2:3], [0:2], [0:3]}
  %g = f32[2,3]{1,0} bitcast(%mine)
  %p3 = f32[2,3]{1,0} parameter(3)
  ROOT %new = f32[2,3]{1,0} add(%p3, %g)
}

ENTRY %main (a: f32[2,3], b: f32[2,3], c: f32[2,2,3], d: f32[2,3], e: f32[]) -> f32[2,3] {
  %a = f32[2,3]{1,0} parameter(0)
  %b = f32[2,3]{1,0} parameter(1)
  %c = f32[2,2,3]{2,1,0} parameter(2)
  %d = f32[2,3]{1,0} parameter(3)
  %e = f32[] parameter(4)
  ROOT %update = f32[2,3]{1,0} fusion(%a, %b, %c, %d, %e), kind=kLoop, calls=%fused
}
"""


def test_a_sliced_stack_reads_one_leaf():
    comps = step_hlo._computations(STACK_HLO)
    assert step_hlo._unread_parameters(comps["fused"]) == {0, 2}
    # Read: b (24), d (24), e (4); written: 24. The whole stack would add a (24) and c (48).
    assert step_hlo.kernel_bytes(STACK_HLO) == 24 + 24 + 4 + 24
    sliced_all = STACK_HLO.replace("slice={[2:3]", "slice={[0:3]").replace(
        "%mine = f32[1,2,3]", "%mine = f32[3,2,3]")
    assert step_hlo._unread_parameters(step_hlo._computations(sliced_all)["fused"]) == set()


# One layer's keys cut out of a gemm that projected several layers at once, then scaled: the
# kernel loads the slice (2 x 3 floats) of the [4, 6] operand, and all of the [2, 3] one.
SLICED_HLO = """
%fused (p0: f32[4,6], p1: f32[2,3]) -> f32[2,3] {
  %p0 = f32[4,6]{1,0} parameter(0)
  %b0 = f32[2,2,6]{2,1,0} bitcast(%p0)
  %k = f32[1,2,3]{2,1,0} slice(%b0), slice={[0:1], [0:2], [0:3]}
  %kb = f32[2,3]{1,0} bitcast(%k)
  %p1 = f32[2,3]{1,0} parameter(1)
  ROOT %y = f32[2,3]{1,0} multiply(%kb, %p1)
}

ENTRY %main (a: f32[4,6], b: f32[2,3]) -> f32[2,3] {
  %a = f32[4,6]{1,0} parameter(0)
  %b = f32[2,3]{1,0} parameter(1)
  ROOT %out = f32[2,3]{1,0} fusion(%a, %b), kind=kLoop, calls=%fused
}
"""


def test_an_operand_only_sliced_counts_its_slices():
    assert step_hlo._sliced_parameters(step_hlo._computations(SLICED_HLO)["fused"]) == {0: 24}
    assert step_hlo.kernel_bytes(SLICED_HLO) == 24 + 24 + 24  # slice, p1, result
    whole = SLICED_HLO.replace("ROOT %y = f32[2,3]{1,0} multiply(%kb, %p1)",
                               "%y = f32[2,3]{1,0} multiply(%kb, %p1)\n"
                               "  %r = f32[4,6]{1,0} negate(%p0)\n"
                               "  ROOT %t = (f32[2,3]{1,0}, f32[4,6]{1,0}) tuple(%y, %r)")
    whole = whole.replace("-> f32[2,3] {\n  %p0", "-> (f32[2,3], f32[4,6]) {\n  %p0")
    whole = whole.replace("ROOT %out = f32[2,3]{1,0} fusion",
                          "ROOT %out = (f32[2,3]{1,0}, f32[4,6]{1,0}) fusion")
    assert step_hlo._sliced_parameters(step_hlo._computations(whole)["fused"]) == {}
    assert step_hlo.kernel_bytes(whole) == 96 + 24 + (24 + 96)  # all of p0 read, both written


def test_dot_flops_of_a_gpu_program():
    assert step_hlo.dot_flops(GPU_HLO) == 2 * 16 * 8 * 32 + 2 * (4 * 5 * 7) * 6
    assert step_hlo.unfused_ops(GPU_HLO) == 2


def test_peak_table():
    assert accelerator_suite.peak_flops("NVIDIA H200") == 989e12
    assert accelerator_suite.peak_flops("TPU v5 lite") == 197e12
    assert accelerator_suite.peak_flops("cpu") is None


def test_a_gpu_reruns_rows_with_xla_attention_and_the_per_leaf_norm(monkeypatch):
    plan = accelerator_suite.SMOKE
    assert accelerator_suite.train_runs(plan) == [
        ("tiny", b, d, "auto", "auto") for b in (8, 16) for d in ("bfloat16", "float32")]
    assert accelerator_suite.train_runs(plan, gpu_ab=True) == [
        ("tiny", 8, "bfloat16", "xla", "auto"), ("tiny", 8, "bfloat16", "auto", "per_leaf")]
    seen = []

    def fake_measure(preset, batch, enc, dec, steps, dtype, hlo, trace_dir, attention,
                     grad_norm):
        seen.append((preset, batch, dtype, attention, grad_norm, steps))
        return {"device": "cpu", "steps_per_s": 1.0, "achieved_tflops": 0.0,
                "grad_norm": "stacked" if grad_norm == "auto" else grad_norm}

    monkeypatch.setattr(accelerator_suite.train_throughput, "measure", fake_measure)
    runs = accelerator_suite.train_runs(plan, gpu_ab=True)
    rows = accelerator_suite.train_rows(runs, 3, float("inf"), "")
    assert seen == [("tiny", 8, "bfloat16", "xla", "auto", 3),
                    ("tiny", 8, "bfloat16", "auto", "per_leaf", 3)]
    assert rows[0]["mfu"] is None and [r["grad_norm"] for r in rows] == ["stacked", "per_leaf"]
    spent = accelerator_suite.train_rows(runs[:1], 3, 0.0, "")
    assert spent == [{"preset": "tiny", "batch": 8, "dtype": "bfloat16", "attention": "xla",
                      "grad_norm": "auto", "unmeasured": "time budget spent"}]


def test_the_first_training_rows_run_before_decoding(tmp_path, monkeypatch):
    order = []

    def fake_measure(preset, batch, enc, dec, steps, dtype, hlo, trace_dir, attention,
                     grad_norm):
        order.append(f"{preset}{batch} {dtype}")
        return {"device": "cpu", "steps_per_s": 1.0, "achieved_tflops": 0.0, "batch": batch,
                "dtype": dtype, "grad_norm": "per_leaf"}

    monkeypatch.setattr(accelerator_suite.train_throughput, "measure", fake_measure)
    monkeypatch.setattr(accelerator_suite, "decode_rows",
                        lambda plan, deadline: order.append("decode") or {})
    monkeypatch.setattr(accelerator_suite, "markdown", lambda result: "")
    result = accelerator_suite.run_suite(str(tmp_path), smoke=True, budget_s=600,
                                         parts=["train", "decode"], aot=False)
    assert order == ["tiny8 bfloat16", "tiny8 float32", "decode", "tiny16 bfloat16",
                     "tiny16 float32"]
    assert [(r["batch"], r["dtype"]) for r in result["train"]] == [
        (8, "bfloat16"), (8, "float32"), (16, "bfloat16"), (16, "float32")]


def test_smoke_run_writes_both_tables(tmp_path):
    out = str(tmp_path / "suite")
    result = accelerator_suite.run_suite(out, smoke=True, budget_s=600,
                                         parts=["train", "decode", "aot"], aot=False)
    with open(os.path.join(out, "accelerator_suite.json")) as f:
        saved = json.load(f)
    assert saved["smoke"] and len(saved["train"]) == 4
    for row in saved["train"]:
        assert row["steps_per_s"] > 0 and row["hlo_flops"] > 0 and row["mfu"] is None
        assert row["convert_kernels"] >= 0 and "fusion" in row["kernels"]
        assert row["unfused_ops"] >= sum(row["kernels"].values())
    assert [(r["batch"], r["beams"]) for r in saved["decode"]["rows"]] == [(1, 4)]
    decode = saved["decode"]["rows"][0]  # the trie's mask and next nodes cost ops of their own
    assert decode["ours_constrained_ops"] > decode["ours_free_ops"] > 0
    assert saved["decode"]["peer"].startswith("unmeasured")
    assert saved["aot"] == {"unmeasured": "--aot not given"}
    with open(os.path.join(out, "accelerator_suite.md")) as f:
        table = f.read()
    # On this CPU 'auto' is optax's per-leaf norm.
    assert "| tiny | 16 | float32 | auto (0) | per_leaf |" in table and "| 1x4 |" in table
    assert "unmeasured" in table and result["seconds"] > 0


def test_a_spent_budget_reports_unmeasured_rows(tmp_path):
    result = accelerator_suite.run_suite(str(tmp_path), smoke=True, budget_s=0,
                                         parts=["train", "decode"], aot=False)
    assert all(r.get("unmeasured") == "time budget spent" for r in result["train"])
    assert result["decode"] == {"unmeasured": "time budget spent"}
