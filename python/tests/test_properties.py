"""Property tests of the CPU path through the Python package: 1000 random calls per method
from a seeded generator (a failure names its case index; ``Case(method, index)`` rebuilds it),
against float64 numpy attention.

Shapes reach the edges: B, Nq = 0, lengths of 1, odd, unequal both ways and around the 64-key
blocks, GQA and MQA, every head dim class, causal or not, both layouts, float32 and float16,
strided views with junk between rows, an explicit scale now and then, and in one call in eight
a NaN or Inf planted with validation off. Each call must give NaN in exactly the rows the
non-finite contract names (docs/VALIDATION.md), output and log-sum-exp; 0 and -inf in rows
that see no key; elsewhere stay within its method's error of float64 on the inputs with the
planted values zeroed. One call in four is repeated on contiguous copies in the other layout,
which must give the same bits.
"""
import numpy as np
import pytest

import intfa
from reference import attention64

SEED = 20241919
CASES = 1000
METHODS = ("fp32", "fp16", "int8", "int8-paper", "fp8-e4m3")
SPECIAL = (1, 2, 3, 7, 47, 48, 49, 63, 64, 65, 127, 128, 129)
# Largest |O - R| of a case's rows against float64, in units of max |V| (see
# Tests/IntFlashAttentionTests/CPUPropertyTests.swift): fp32 exact to rounding, fp16 to its
# input and P rounding, the INT8 schemes their quantization error on rows of a few keys.
# FP8 E4M3 has no meaningful per-case bound (on such rows its error reaches max |V|); it is
# held to its accuracy over all cases instead, and to its scheme by the Swift tests.
TOLERANCE = {"fp32": 2e-5, "fp16": 1.5e-2, "int8": 0.3, "int8-paper": 0.3}
FP8_MEAN_REL_L1 = 0.12


class Case:
    def __init__(self, method, index):
        self.method, self.index = method, index
        rng = np.random.default_rng([SEED, index, METHODS.index(method)])
        pick = lambda values: values[int(rng.integers(len(values)))]
        length = lambda limit: pick(SPECIAL) if rng.integers(4) == 0 else int(rng.integers(1, limit + 1))
        self.b = 0 if rng.integers(40) == 0 else pick((1, 1, 2, 3))
        self.h = pick((1, 1, 2, 3, 4))
        self.hkv = pick([x for x in range(1, self.h + 1) if self.h % x == 0])
        self.nq = 0 if rng.integers(30) == 0 else length(100)
        self.nk = length(200)
        self.d = pick((8, 16, 24, 40, 64, 128))
        while max(self.b, 1) * self.h * self.nq * self.nk > 1 << 15:
            if self.nq > self.nk:
                self.nq = (self.nq + 1) // 2
            else:
                self.nk = (self.nk + 1) // 2
        self.causal = bool(rng.integers(2))
        self.scale = float(rng.uniform(0.01, 2.0)) if rng.integers(4) == 0 else None
        self.layout = pick(("bhnd", "bnhd"))
        self.dtype = pick((np.float32, np.float32, np.float16))
        self.strided = bool(rng.integers(3) == 0)
        self.seed = int(rng.integers(1 << 62))
        self.planted = []
        if rng.integers(8) == 0:
            sizes = (self.b * self.h * self.nq * self.d, self.b * self.hkv * self.nk * self.d, self.b * self.hkv * self.nk * self.d)
            for _ in range(1 + int(rng.integers(2))):
                tensor = int(rng.integers(3))
                if sizes[tensor]:
                    self.planted.append((tensor, int(rng.integers(sizes[tensor])), pick((np.nan, np.inf, -np.inf))))

    def __repr__(self):
        return (f"{self.method} case {self.index}: B={self.b} H={self.h} Hkv={self.hkv} Nq={self.nq} Nk={self.nk} "
                f"D={self.d} causal={self.causal} scale={self.scale} {self.layout} {np.dtype(self.dtype).name} "
                f"strided={self.strided} planted={self.planted}")

    def inputs(self):
        """q, k, v in BHND (float64 values exactly representable in the case's dtype)."""
        rng = np.random.default_rng(self.seed)
        tensors = [rng.standard_normal(shape).astype(self.dtype).astype(np.float64) for shape in
                   ((self.b, self.h, self.nq, self.d), (self.b, self.hkv, self.nk, self.d), (self.b, self.hkv, self.nk, self.d))]
        for tensor, element, value in self.planted:
            tensors[tensor].reshape(-1)[element] = value
        return tensors

    def arrays(self, tensors, layout, strided):
        """The tensors as the call passes them: in `layout`, as views of a larger buffer when
        strided (every other token, junk elsewhere)."""
        out = []
        for x in tensors:
            x = x.astype(self.dtype)
            if layout == "bnhd":
                x = x.transpose(0, 2, 1, 3)
            x = np.ascontiguousarray(x)
            if strided:
                axis = 2 if layout == "bhnd" else 1
                wide = np.full(x.shape[:axis] + (2 * x.shape[axis],) + x.shape[axis + 1:], 7777, dtype=self.dtype)
                index = [slice(None)] * 4
                index[axis] = slice(0, None, 2)
                wide[tuple(index)] = x
                x = wide[tuple(index)]
            out.append(x)
        return out

    def run(self, tensors, layout, strided):
        q, k, v = self.arrays(tensors, layout, strided)
        out, lse = intfa.attention(q, k, v, is_causal=self.causal, scale=self.scale, method=self.method,
                                   layout=layout, return_lse=True, validate=False)
        return (out.transpose(0, 2, 1, 3) if layout == "bnhd" else out), lse


def nan_rows(case, q, k, v):
    """The non-finite contract, written out: [B, H, Nq] booleans."""
    bad_q = ~np.isfinite(q).all(-1)                                    # [B, H, Nq]
    bad_kv = ~(np.isfinite(k).all(-1) & np.isfinite(v).all(-1))         # [B, Hkv, Nk]
    group = case.h // case.hkv
    bad_kv = np.repeat(bad_kv, group, axis=1)                           # [B, H, Nk]
    first_bad = np.where(bad_kv.any(-1), bad_kv.argmax(-1), case.nk)    # [B, H]
    rows = np.arange(case.nq)
    visible = np.clip(rows + case.nk - case.nq + 1, 0, case.nk) if case.causal else np.full(case.nq, case.nk)
    reached = bad_q | (first_bad[..., None] < visible[None, None, :])
    return reached & (visible > 0)[None, None, :], visible


@pytest.mark.parametrize("method", METHODS)
def test_random_calls_match_float64(method):
    rel_l1 = []
    for index in range(CASES):
        case = Case(method, index)
        tensors = case.inputs()
        out, lse = case.run(tensors, case.layout, case.strided)
        assert out.shape == (case.b, case.h, case.nq, case.d) and out.dtype == case.dtype, case
        assert lse.shape == (case.b, case.h, case.nq), case
        out = out.astype(np.float64)
        if index % 4 == 0:
            other = "bnhd" if case.layout == "bhnd" else "bhnd"
            again, again_lse = case.run(tensors, other, not case.strided)
            assert np.array_equal(out, again.astype(np.float64), equal_nan=True), case
            assert np.array_equal(lse, again_lse, equal_nan=True), case

        q, k, v = tensors
        expected_nan, visible = nan_rows(case, q, k, v)
        clean = [np.where(np.isfinite(x), x, 0.0) for x in tensors]
        ref, _ = attention64(*clean, causal=case.causal, scale=case.scale)
        row_nan = np.isnan(out).any(-1)
        assert np.array_equal(row_nan, expected_nan), case
        assert np.isnan(out[expected_nan]).all() and np.isnan(lse[expected_nan]).all(), case
        assert not np.isnan(lse[~expected_nan]).any(), case
        blind = np.broadcast_to(visible == 0, row_nan.shape)
        assert (out[blind] == 0).all() and np.isneginf(lse[blind]).all(), case
        kept = ~expected_nan & ~blind
        if not kept.any():
            continue
        unit = max(np.abs(clean[2]).max(), 1e-30)
        # A float16 output adds its own rounding: half an ulp, 2^-11 of the value.
        rounding = np.abs(ref[kept]) * 2.0 ** -11 if case.dtype == np.float16 else 0.0
        error = np.maximum(np.abs(out[kept] - ref[kept]) - rounding, 0).max() / unit
        if method in TOLERANCE:
            assert error <= TOLERANCE[method], f"{case}: |O - R| reaches {error} x max|V|"
        else:
            assert error <= 2, case  # any convex combination of V's rows is within 2 max|V|
            rel_l1.append(np.abs(out[kept] - ref[kept]).sum() / max(np.abs(ref[kept]).sum(), 1e-30))
    if rel_l1:
        assert np.mean(rel_l1) <= FP8_MEAN_REL_L1, f"{method}: mean relative L1 {np.mean(rel_l1)}"
