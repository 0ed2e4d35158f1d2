"""Every bad or edge input of the Python package's CPU path and its C interface, one row each:
the call, the exception type it must raise and words of its message. A subprocess runs the
whole table, and the issue's one-line reproductions, and must survive every one of them."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import intfa
from intfa import _lib

r = lambda *shape: np.random.default_rng(0).random(shape, dtype=np.float32)  # noqa: E731


def planted(shape, index, value, dtype=np.float32):
    x = r(*shape).astype(dtype)
    x[index] = value
    return x


def misaligned(shape):
    """A float32 array whose data starts one byte past an element boundary."""
    count = int(np.prod(shape))
    return np.frombuffer(bytearray(4 * count + 1), dtype=np.float32, count=count, offset=1).reshape(shape)


def host_call(q_tensor, problem=None):
    """intfa_attention_host with hand-made tensors (what the C interface sees)."""
    buffer = np.zeros(4096, dtype=np.float32)
    good = _lib.Tensor(buffer.ctypes.data, _lib.DTYPE_FLOAT32, 0, 2 * 8 * 64, 8 * 64, 64)
    problem = problem or _lib.Problem(1, 2, 2, 8, 8, 64, 0.0, 0, 0, 0)
    status = _lib.library().intfa_attention_host(ctypes.byref(problem), ctypes.byref(q_tensor), ctypes.byref(good),
                                                 ctypes.byref(good), ctypes.byref(good), None, 1, 0)
    _lib.check(status)


def with_environment(name, value, call):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        call()
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


Q, K, V = r(1, 2, 100, 64), r(1, 2, 100, 64), r(1, 2, 100, 64)
BIG = np.broadcast_to(r(1, 1, 1, 128), (1, 1, 1 << 26, 128))
HUGE = np.broadcast_to(r(1, 1, 1, 128), (1, 1, 1 << 40, 128))

# (name, call, exception, words of the message as a regular expression)
CASES = [
    # Shapes: every argument against the others, both shapes named.
    ("v head dim", lambda: intfa.attention(r(1, 2, 100, 64), r(1, 2, 100, 64), r(1, 2, 100, 32)), ValueError,
     r"v has shape \(1, 2, 100, 32\), expected k's shape \(1, 2, 100, 64\)"),
    ("v heads (was a segfault)", lambda: intfa.attention(r(1, 16, 4096, 128), r(1, 16, 4096, 128), r(1, 1, 4096, 128)),
     ValueError, r"v has shape \(1, 1, 4096, 128\), expected k's shape \(1, 16, 4096, 128\)"),
    ("v tokens", lambda: intfa.attention(Q, K, r(1, 2, 99, 64)), ValueError, r"v has shape \(1, 2, 99, 64\)"),
    ("v tokens in bnhd", lambda: intfa.attention(r(1, 100, 2, 64), r(1, 100, 2, 64), r(1, 99, 2, 64), layout="bnhd"), ValueError,
     r"v has shape \(1, 99, 2, 64\), expected k's shape \(1, 100, 2, 64\).*'bnhd'"),
    ("k batch", lambda: intfa.attention(Q, r(2, 2, 100, 64), r(2, 2, 100, 64)), ValueError,
     r"k has shape \(2, 2, 100, 64\), incompatible with q's \(1, 2, 100, 64\)"),
    ("k head dim", lambda: intfa.attention(Q, K[..., :32], V[..., :32]), ValueError, r"k has shape .*32\), incompatible"),
    ("heads not a multiple", lambda: intfa.attention(r(1, 3, 10, 64), r(1, 2, 10, 64), r(1, 2, 10, 64)), ValueError,
     r"q's heads \(3\) must be a multiple of k's \(2\)"),
    ("q of 3 dimensions", lambda: intfa.attention(Q[0], K, V), ValueError, r"q must have 4 dimensions .* not 3"),
    ("k of 5 dimensions", lambda: intfa.attention(Q, K[None], V), ValueError, r"k must have 4 dimensions"),
    ("no heads", lambda: intfa.attention(r(1, 0, 10, 64), r(1, 0, 10, 64), r(1, 0, 10, 64)), ValueError,
     r"at least one head"),
    ("no keys", lambda: intfa.attention(r(1, 2, 10, 64), r(1, 2, 0, 64), r(1, 2, 0, 64)), ValueError,
     r"k and v have no tokens .*at least one key"),
    ("head dim 12", lambda: intfa.attention(r(1, 1, 4, 12), r(1, 1, 4, 12), r(1, 1, 4, 12)), ValueError,
     r"head dim 12 .*multiple of 8 between 8 and 256"),
    ("head dim 264", lambda: intfa.attention(r(1, 1, 4, 264), r(1, 1, 4, 264), r(1, 1, 4, 264)), ValueError,
     r"head dim 264"),
    ("head dim 0", lambda: intfa.attention(r(1, 1, 4, 0), r(1, 1, 4, 0), r(1, 1, 4, 0)), ValueError, r"head dim 0"),
    # Types.
    ("int32 q", lambda: intfa.attention(Q.astype(np.int32), K, V), TypeError, r"q has dtype int32"),
    ("float64 k", lambda: intfa.attention(Q, K.astype(np.float64), V), TypeError, r"k has dtype float64"),
    ("big-endian v", lambda: intfa.attention(Q, K, V.astype(">f4")), TypeError, r"v has dtype >f4.*native byte order"),
    ("a list", lambda: intfa.attention(Q.tolist(), K, V), TypeError, r"torch tensors or numpy arrays \(q: list"),
    ("None", lambda: intfa.attention(Q, None, V), TypeError, r"k: NoneType"),
    # Options.
    ("unknown method", lambda: intfa.attention(Q, K, V, method="int3"), ValueError, r"unknown method 'int3'"),
    ("int4 is Swift-only", lambda: intfa.attention(Q, K, V, method="int4"), ValueError,
     r"'int4' runs only in the Swift API and the intfa command"),
    ("fp8-e5m2 is Swift-only", lambda: intfa.attention(Q, K, V, method="fp8-e5m2"), ValueError, r"'fp8-e5m2' runs only"),
    ("method as a list", lambda: intfa.attention(Q, K, V, method=["int8"]), TypeError,
     r"method must be a string, not list"),
    ("method None", lambda: intfa.attention(Q, K, V, method=None), TypeError, r"method must be a string, not NoneType"),
    ("unknown layout", lambda: intfa.attention(Q, K, V, layout="nhd"), ValueError, r"layout must be 'bhnd' or 'bnhd'"),
    ("layout as a number", lambda: intfa.attention(Q, K, V, layout=1), TypeError, r"layout must be a string"),
    ("negative scale", lambda: intfa.attention(Q, K, V, scale=-1.0), ValueError, r"scale must be a finite positive"),
    ("NaN scale", lambda: intfa.attention(Q, K, V, scale=float("nan")), ValueError, r"finite positive number, not nan"),
    ("infinite scale", lambda: intfa.attention(Q, K, V, scale=float("inf")), ValueError, r"not inf"),
    ("scale beyond float32", lambda: intfa.attention(Q, K, V, scale=1e300), ValueError,
     r"scale 1e\+300 is beyond float32's range"),
    ("scale below float32", lambda: intfa.attention(Q, K, V, scale=1e-60), ValueError, r"rounds to 0 in float32"),
    ("scale as a string", lambda: intfa.attention(Q, K, V, scale="0.1"), TypeError, r"scale must be a real number"),
    ("scale as a bool", lambda: intfa.attention(Q, K, V, scale=True), TypeError, r"scale must be a real number"),
    ("is_causal as a string", lambda: intfa.attention(Q, K, V, is_causal="yes"), TypeError,
     r"is_causal must be True or False, not 'yes'"),
    ("return_lse as an int", lambda: intfa.attention(Q, K, V, return_lse=1), TypeError, r"return_lse must be True or False"),
    ("validate as a string", lambda: intfa.attention(Q, K, V, validate="no"), TypeError,
     r"validate must be True, False or None, not 'no'"),
    # Memory layout.
    ("Fortran-order q", lambda: intfa.attention(np.asfortranarray(Q), K, V), ValueError,
     r"q's last dimension \(the head dim\) must be contiguous"),
    ("reversed k", lambda: intfa.attention(Q, K[:, :, ::-1], V), ValueError, r"k has a negative stride"),
    ("strides of half elements", lambda: intfa.attention(
        np.lib.stride_tricks.as_strided(Q, (1, 2, 100, 64), (51200, 25600, 258, 4)), K, V), ValueError,
     r"q's strides .* not whole 4-byte elements"),
    ("misaligned data", lambda: intfa.attention(misaligned((1, 2, 100, 64)), K, V), ValueError,
     r"q: the data pointer is not aligned"),
    # Values.
    ("NaN in q", lambda: intfa.attention(planted((1, 2, 100, 64), (0, 1, 5, 7), np.nan), K, V), ValueError,
     r"q holds a non-finite value \(NaN or Inf\) at element 6727"),
    ("Inf in v", lambda: intfa.attention(Q, K, planted((1, 2, 100, 64), (0, 0, 0, 3), np.inf)), ValueError,
     r"v holds a non-finite value .* element 3"),
    ("fp16 overflow", lambda: intfa.attention(planted((1, 2, 100, 64), (0, 0, 0, 5), 7e4), K, V, method="fp16"),
     ValueError, r"q holds 70000.0 at element 5 .*overflows.*65504"),
    # Memory.
    ("K/V of 2^26 tokens (was an abort)", lambda: intfa.attention(r(1, 1, 16, 128), BIG, BIG, validate=False),
     MemoryError, r"out of host memory: \d+ bytes \(.*GiB\) requested for the CPU path's buffers"),
    ("K/V of 2^40 tokens", lambda: intfa.attention(r(1, 1, 16, 128), HUGE, HUGE, validate=False), MemoryError,
     r"out of host memory: \d+ bytes \(.*PiB\) requested"),
    # The environment.
    ("INTFA_CPU_ISA=bogus", lambda: with_environment("INTFA_CPU_ISA", "bogus", lambda: intfa.attention(Q, K, V)),
     ValueError, r"INTFA_CPU_ISA=bogus is not valid: expected scalar, avx2"),
    # The C interface's own checks, where Python cannot see the extents.
    ("C: strides past 64 bits", lambda: host_call(_lib.Tensor(1 << 12, _lib.DTYPE_FLOAT32, 0, 0, 1 << 62, 64)), ValueError,
     r"q of shape \[1, 2, 8, 64\] at element strides \(0, 4611686018427387904, 64, 1\) is too large"),
    ("C: reserved field", lambda: host_call(_lib.Tensor(1 << 12, _lib.DTYPE_FLOAT32, 5, 1024, 512, 64)), ValueError,
     r"q: the reserved field must be 0 \(it is 5\)"),
    ("C: unknown dtype", lambda: host_call(_lib.Tensor(1 << 12, 9, 0, 1024, 512, 64)), ValueError,
     r"q: dtype 9 is not an intfa_dtype"),
    ("C: element count past 2^56", lambda: host_call(_lib.Tensor(1 << 12, _lib.DTYPE_FLOAT32, 0, 0, 0, 64),
                                                      _lib.Problem(1 << 30, 1 << 30, 1, 8, 8, 64, 0.0, 0, 0, 0)),
     ValueError, r"q of shape \[1073741824, 1073741824, 8, 64\] is too large \(at most 2\^56"),
    ("C: unknown method", lambda: host_call(_lib.Tensor(1 << 12, _lib.DTYPE_FLOAT32, 0, 1024, 512, 64),
                                            _lib.Problem(1, 2, 2, 8, 8, 64, 0.0, 0, 42, 0)),
     intfa.UnsupportedError, r"method 42 is not available"),
    # The GPU entry points refuse host arrays before they need a device.
    ("quantize of numpy arrays", lambda: intfa.quantize(Q, K, V), TypeError, r"quantize takes CUDA torch tensors"),
    ("attention_quantized of None", lambda: intfa.attention_quantized(None), TypeError, r"takes the QuantizedInputs"),
    ("attention_quantized grid", lambda: intfa.attention_quantized(None, grid="dynamic"), ValueError,
     r"grid must be None, 'persistent' or 'tiles'"),
    ("merge_partial of numpy arrays", lambda: intfa.merge_partial(Q, Q[..., 0], Q, Q[..., 0]), TypeError,
     r"merge_partial takes CUDA torch tensors"),
]


def test_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("name,call,error,words", CASES, ids=[c[0] for c in CASES])
def test_refused(name, call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    # The exact type: MemoryError is not a ValueError, and a TypeError is not an IntfaError.
    assert type(info.value) is error, f"{name}: {type(info.value).__name__}: {info.value}"


def test_empty_dimensions_give_empty_results():
    for b, nq in ((0, 10), (1, 0), (0, 0)):
        q, k = r(b, 2, nq, 64), r(b, 2, 7, 64)
        out, lse = intfa.attention(q, k, k, return_lse=True)
        assert out.shape == (b, 2, nq, 64) and lse.shape == (b, 2, nq)
        out = intfa.attention(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), layout="bnhd")
        assert out.shape == (b, nq, 2, 64)


def test_scales_of_any_real_type():
    reference = intfa.attention(Q, K, V, scale=0.125)
    for scale in (np.float32(0.125), np.float64(0.125), 0.125, np.float16(0.125)):
        assert np.array_equal(intfa.attention(Q, K, V, scale=scale), reference)
    assert np.array_equal(intfa.attention(Q, K, V, is_causal=np.bool_(True)), intfa.attention(Q, K, V, is_causal=True))


@pytest.mark.parametrize("method", ["fp32", "int8", "fp16"])
def test_non_finite_without_validation_gives_nan_rows(method):
    q, k, v = r(1, 2, 8, 64), r(1, 2, 8, 64), r(1, 2, 8, 64)
    q[0, 0, 2, 5] = np.nan
    k[0, 1, 5, 1] = np.inf
    out, lse = intfa.attention(q, k, v, is_causal=True, method=method, return_lse=True, validate=False)
    nan = np.isnan(out).any(-1)
    # Head 0: only query row 2. Head 1: every row that sees key 5 (rows 5..7 when causal).
    expected = np.zeros((1, 2, 8), bool)
    expected[0, 0, 2] = True
    expected[0, 1, 5:] = True
    assert np.array_equal(nan, expected) and np.array_equal(np.isnan(lse), expected)
    assert np.isnan(out[expected]).all() and np.isfinite(out[~expected]).all()
    # The other rows are the attention without the offending values.
    clean_q, clean_k = np.nan_to_num(q, nan=0.0), np.nan_to_num(k, posinf=0.0)
    clean = intfa.attention(clean_q, clean_k, v, is_causal=True, method=method)
    assert np.allclose(out[~expected], clean[~expected], rtol=0, atol=1e-6)


def test_fp16_overflow_without_validation_gives_nan_rows():
    q, k, v = r(1, 1, 4, 64), r(1, 1, 4, 64), r(1, 1, 4, 64)
    v[0, 0, 3, 0] = 1e5  # key 3: seen by every row without a mask
    out = intfa.attention(q, k, v, method="fp16", validate=False)
    assert np.isnan(out).all()
    q[0, 0, 1, 0] = 65510  # rounds to 65504 in fp16: representable, not offending
    v[0, 0, 3, 0] = 1.0
    assert np.isfinite(intfa.attention(q, k, v, method="fp16")).all()


SURVIVAL = r"""
import sys
sys.path.insert(0, {tests!r})
import test_bad_inputs as table
for name, call, error, words in table.CASES:
    try:
        call()
    except Exception as caught:
        print("refused", name, type(caught).__name__, flush=True)
    else:
        print("accepted", name, flush=True)
print("alive")
"""

REPRODUCTIONS = [
    "import numpy as np,intfa;r=lambda*s:np.random.rand(*s).astype('f4');"
    "intfa.attention(r(1,16,4096,128),r(1,16,4096,128),r(1,1,4096,128))",
    "import numpy as np,intfa;r=lambda*s:np.random.rand(*s).astype('f4');"
    "intfa.attention(r(1,2,100,64),r(1,2,100,64),r(1,2,100,32))",
    "import numpy as np,intfa;k=np.broadcast_to(np.ones((1,1,1,128),'f4'),(1,1,2**26,128));"
    "intfa.attention(np.ones((1,1,16,128),'f4'),k,k,validate=False)",
]


def _run(code):
    root = os.path.dirname(os.path.dirname(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_interpreter_survives_every_case():
    run = _run(SURVIVAL.format(tests=os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[-1] == "alive"
    for name, _, error, _ in CASES:
        assert f"refused {name} {error.__name__}" in lines, (name, run.stdout[-2000:])


@pytest.mark.parametrize("code", REPRODUCTIONS)
def test_the_issue_reproductions_raise_instead_of_crashing(code):
    run = _run(code)
    # An uncaught Python exception exits with 1; a crash would be 139 (SIGSEGV) or 134 (SIGABRT).
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(("ValueError: ", "MemoryError: ")), last
