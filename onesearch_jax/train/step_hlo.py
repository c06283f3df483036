"""Where a compiled train step's time goes, read from XLA: its cost analysis (FLOPs, bytes
accessed) and its optimized HLO (fusions, converts, transposes and copies that run as their own
kernels, and how many full-vocabulary `[B, T, V]` buffers it materialises, by dtype).

Ops inside a fusion body share one kernel and never touch memory on their own; ops of the entry
computation (and of loops and calls) each write a buffer. So the counts that matter for speed are
the unfused ones: a `convert` there is a dtype copy, an f32 `[B, T, V]` buffer is a full copy of
the logits. Pure text parsing (`hlo_summary`), tested on a hand-written module.
"""
from __future__ import annotations

import re

import numpy as np

_COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*(\(.*\))?\s*->\s*.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(\(.*?\)|\w+\[[\d,]*\](?:\{[^}]*\})?)"
                          r"\s+([\w\-]+)\(")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4,
          "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8}
_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")
KERNEL_OPS = ("fusion", "convert", "copy", "transpose", "dot", "convolution", "reduce",
              "custom-call", "scatter", "gather", "sort")


def _elements(dims: str) -> int:
    return int(np.prod([int(d) for d in dims.split(",") if d] or [1]))


_TRIVIAL = {"parameter", "bitcast", "broadcast", "constant", "reshape", "get-tuple-element",
            "tuple"}


def _computations(hlo_text: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Computation name -> its instructions as (name, result shape, opcode, the rest of the
    line)."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in hlo_text.splitlines():
        head = _COMPUTATION.match(line.strip())
        if head and "=" not in line.split("->")[0]:
            current = ("ENTRY " if head.group(1) else "") + head.group(2)
            out[current] = []
            continue
        inst = _INSTRUCTION.match(line)
        if inst and current is not None:
            out[current].append((inst.group(2), inst.group(3), inst.group(4),
                                 line[inst.end():]))
    return out


def _fusion_bodies(comps) -> set[str]:
    """Computations that never run as kernels of their own: fusion bodies, and the reducers and
    comparators ops apply element by element (`to_apply=`: reduce, scatter, sort, all-reduce)."""
    return {m for insts in comps.values() for _, _, op, rest in insts
            for m in (re.findall(r"calls=%?([\w.\-]+)", rest) if op == "fusion" else [])
            + re.findall(r"to_apply=%?([\w.\-]+)", rest)}


def shape_bytes(shape: str) -> int:
    """Bytes of an HLO shape, every part of a tuple (an unknown dtype: 4 bytes an element)."""
    return sum(_BYTES.get(dt, 4) * _elements(dims) for dt, dims in _SHAPE.findall(shape))


def _kernel_ops(comps, bodies):
    """(the computation's result shapes by name, instruction) for every op that runs as its own
    kernel: outside fusion bodies, layout-only ops skipped."""
    for name, insts in comps.items():
        if name in bodies:
            continue
        shapes = {inst: shape for inst, shape, _, _ in insts}
        for inst in insts:
            if inst[2] not in _TRIVIAL:
                yield shapes, inst


_ELEMENTWISE = {"add", "subtract", "multiply", "divide", "select", "maximum", "minimum", "sqrt",
                "rsqrt", "exp", "log", "negate", "abs", "convert", "compare", "power", "tanh",
                "and", "or", "not", "xor", "clamp", "sign", "floor", "ceil"}


def _operand_names(rest: str) -> list[str]:
    return re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0])


def _users(insts) -> dict[str, list[str]]:
    """Instruction name -> the names of the instructions that read it."""
    users: dict[str, list[str]] = {}
    for name, _, _, rest in insts:
        for o in _operand_names(rest):
            users.setdefault(o, []).append(name)
    return users


def _parameter_number(rest: str) -> int:
    return int(re.match(r"\s*(\d+)", rest).group(1))


def _unread_parameters(insts) -> set[int]:
    """Parameter numbers of a fused computation whose elements the kernel never loads: those
    only an operand of a `concatenate` reads, when every use of the concatenation (through
    elementwise ops) is a `slice` of other operands' ranges (a GPU kernel evaluates a fused
    concatenation's operands lazily, element by element). A stack of same-role gradients
    sliced back per leaf (train/global_norm.py) reads one leaf, not the stack."""
    by_name = {name: (shape, op, rest) for name, shape, op, rest in insts}
    users = _users(insts)

    def slice_ranges(start: str, dim: int, dims: str):
        """[(lo, hi)] along `dim` that the uses of `start` read, or None if some use is not an
        elementwise op of the same shape or a slice."""
        ranges, todo, seen = [], [start], set()
        while todo:
            for user in users.get(todo.pop(), []):
                if user in seen:
                    continue
                seen.add(user)
                shape, op, rest = by_name[user]
                if op == "slice":
                    bounds = re.findall(r"\[(\d+):(\d+)(?::\d+)?\]", rest)
                    ranges.append(tuple(int(b) for b in bounds[dim]))
                elif op in _ELEMENTWISE and _SHAPE.search(shape).group(2) == dims:
                    todo.append(user)
                else:
                    return None
        return ranges

    unread = set()
    for name, shape, op, rest in insts:
        if op != "concatenate":
            continue
        dim = int(re.search(r"dimensions=\{(\d+)\}", rest).group(1))
        ranges = slice_ranges(name, dim, _SHAPE.search(shape).group(2))
        if ranges is None:
            continue
        offset = 0
        for o in _operand_names(rest):
            size = int(_SHAPE.search(by_name[o][0]).group(2).split(",")[dim])
            if not any(lo < offset + size and hi > offset for lo, hi in ranges):
                skipped = _used_only_by(o, by_name, users)
                unread |= {_parameter_number(by_name[x][2])
                           for x in skipped if by_name[x][1] == "parameter"}
            offset += size
    return unread


def _sliced_parameters(insts) -> dict[int, int]:
    """Parameter number -> bytes loaded, for a fused computation's parameters that only `slice`
    ops read (directly or through bitcasts): the kernel loads the slices, not the operand (one
    layer's keys cut from a gemm that projected every layer's keys and values at once)."""
    by_name = {name: (shape, op) for name, shape, op, _ in insts}
    users = _users(insts)
    out = {}
    for name, shape, op, rest in insts:
        if op != "parameter":
            continue
        loaded, todo, ok = 0, [name], True
        while todo and ok:
            for user in users.get(todo.pop(), []):
                user_shape, user_op = by_name[user]
                if user_op == "slice":
                    loaded += shape_bytes(user_shape)
                elif user_op == "bitcast":
                    todo.append(user)
                else:
                    ok = False
        if ok and loaded:
            out[_parameter_number(rest)] = min(loaded, shape_bytes(shape))
    return out


def _used_only_by(root: str, by_name: dict, users: dict) -> set[str]:
    """`root` and every instruction only it (directly or through others of the set) uses: what a
    kernel never evaluates when it never evaluates `root`."""
    skipped, todo = {root}, [root]
    while todo:
        name = todo.pop()
        if by_name[name][1] == "parameter":
            continue
        for operand in _operand_names(by_name[name][2]):
            if operand not in skipped and set(users[operand]) <= skipped:
                skipped.add(operand)
                todo.append(operand)
    return skipped


def heaviest_kernels(hlo_text: str, n: int = 10) -> list[dict]:
    """The `n` kernels (instructions outside fusion bodies, layout-only ops skipped) that read
    and write the most bytes: result + operands, each operand counted once, less the operands a
    fusion never loads (`_unread_parameters`), an operand only sliced counted by its slices
    (`_sliced_parameters`). With the module's metadata op_name, this says which part of the
    model moves the memory."""
    comps = _computations(hlo_text)
    rows = []
    for shapes, (inst, shape, op, rest) in _kernel_ops(comps, _fusion_bodies(comps)):
        read = {o: shape_bytes(shapes.get(o, "")) for o in _operand_names(rest)}
        if op == "fusion":
            body = re.search(r"calls=%?([\w.\-]+)", rest)
            insts = comps.get(body.group(1), []) if body else []
            unread, sliced = _unread_parameters(insts), _sliced_parameters(insts)
            read = {}
            for i, o in enumerate(_operand_names(rest)):
                if i not in unread:
                    read[o] = max(read.get(o, 0), sliced.get(i, shape_bytes(shapes.get(o, ""))))
        moved = shape_bytes(shape) + sum(read.values())
        where = re.search(r'op_name="([^"]*)"', rest)
        rows.append({"bytes": moved, "op": op, "shape": shape.split("{")[0],
                     "name": inst, "op_name": where.group(1) if where else ""})
    return sorted(rows, key=lambda r: -r["bytes"])[:n]


def kernel_bytes(hlo_text: str) -> float:
    """Bytes all kernels read and write, each once (`heaviest_kernels`' count summed): the
    traffic estimate where a compiler reports no cost analysis (XLA's GPU compiler without a
    GPU); loop bodies counted once."""
    return float(sum(r["bytes"] for r in heaviest_kernels(hlo_text, n=1 << 30)))


def dot_flops(hlo_text: str) -> float:
    """2 x output elements x contracted size, summed over the module's matmuls (`dot` ops, in
    fusion bodies or not, and cuBLAS `custom-call`s): the FLOPs a compiler without a cost
    analysis would report, matmuls only; loop bodies counted once."""
    total = 0.0
    for insts in _computations(hlo_text).values():
        shapes = {inst: shape for inst, shape, _, _ in insts}
        for _, shape, op, rest in insts:
            if op == "dot":
                dims = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
            elif op == "custom-call" and "gemm" in rest:
                dims = re.search(r'"lhs_contracting_dimensions":\[([^\]]*)\]', rest)
            else:
                continue
            lhs = re.match(r"\s*%([\w.\-]+)", rest)
            found = _SHAPE.search(shapes.get(lhs.group(1), "")) if lhs else None
            if not (dims and found):
                continue
            lhs_dims = [int(d) for d in found.group(2).split(",") if d]
            contracted = np.prod([lhs_dims[int(i.strip('" '))] for i in dims.group(1).split(",")
                                  if i.strip('" ')] or [1])
            out = _SHAPE.search(shape)  # a gemm custom call's result is (output, workspace)
            total += 2.0 * _elements(out.group(2)) * float(contracted)
    return total


def cudnn_calls(hlo_text: str) -> int:
    """cuDNN custom calls (flash attention forward and backward on a GPU)."""
    return len(re.findall(r'custom_call_target="__cudnn', hlo_text))


def unfused_ops(hlo_text: str) -> int:
    """How many ops of a compiled program run as their own kernel (outside fusion bodies,
    layout-only ops skipped): on a GPU each is a launch, so a small model's step or a batch-1
    decode is bound by this count, not by its FLOPs."""
    comps = _computations(hlo_text)
    return sum(1 for _ in _kernel_ops(comps, _fusion_bodies(comps)))


def hlo_summary(hlo_text: str, *, batch: int, dec_len: int, vocab: int) -> dict:
    """Counts of a module's kernels by opcode outside fusion bodies (`KERNEL_OPS`), its dtype-copy
    kernels (an unfused convert, or a fusion that only converts), converts folded into fusions,
    and its buffers of B*T*V elements (full-vocabulary logits) by dtype."""
    logits_elements = batch * dec_len * vocab
    comps = _computations(hlo_text)
    bodies = _fusion_bodies(comps)
    only_converts = {name for name in bodies
                     if {op for _, _, op, _ in comps.get(name, [])} - _TRIVIAL == {"convert"}}
    kernels = {op: 0 for op in KERNEL_OPS}
    convert_kernels = converts_fused = 0
    logits_buffers: dict[str, int] = {}
    for name, insts in comps.items():
        if name in bodies:
            if name not in only_converts:
                converts_fused += sum(op == "convert" for _, _, op, _ in insts)
            continue
        for _, shape, op, rest in insts:
            if op in kernels:
                kernels[op] += 1
            called = re.findall(r"calls=%?([\w.\-]+)", rest)
            convert_kernels += op == "convert" or (op == "fusion" and bool(called)
                                                   and called[0] in only_converts)
            if op in _TRIVIAL:
                continue
            for dtype, dims in _SHAPE.findall(shape):
                if _elements(dims) == logits_elements:
                    logits_buffers[dtype] = logits_buffers.get(dtype, 0) + 1
    return {"kernels": kernels, "unfused_ops": sum(1 for _ in _kernel_ops(comps, bodies)),
            "cudnn_calls": cudnn_calls(hlo_text),
            "convert_kernels": int(convert_kernels), "converts_in_fusions": int(converts_fused),
            "logits_sized_buffers": logits_buffers}


def compiled_summary(compiled, *, batch: int, dec_len: int, vocab: int) -> dict:
    """`hlo_summary` of a compiled executable plus its cost analysis (FLOPs, bytes accessed and
    their ratio: below the chip's FLOPs per byte of bandwidth, the step is memory-bound)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
    flops, moved = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    out = {"hlo_flops": flops, "hlo_bytes_accessed": moved,
           "hlo_flops_per_byte": flops / moved if moved else None}
    out.update(hlo_summary(compiled.as_text(), batch=batch, dec_len=dec_len, vocab=vocab))
    return out
