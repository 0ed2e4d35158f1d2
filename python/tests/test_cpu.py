"""The Python package on the CPU path (numpy), its error paths and its ctypes layer."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import intfa
from intfa import _lib
from reference import attention64, rel_l1

# Tolerances against float64, per scheme (docs/SCHEMES.md; the CPU reproduces each scheme):
# relative L1 of the output, and the largest log-sum-exp difference.
TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3, "int8": 0.03, "int8-paper": 0.05, "fp8-e4m3": 0.08}
LSE_TOLERANCE = {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05, "int8-paper": 0.1, "fp8-e4m3": 0.5}


def inputs(b=1, h=2, hkv=None, nq=100, nk=None, d=64, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    hkv, nk = hkv or h, nk or nq
    q = rng.standard_normal((b, h, nq, d))
    k = rng.standard_normal((b, hkv, nk, d))
    v = rng.standard_normal((b, hkv, nk, d))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@pytest.mark.parametrize("method", list(TOLERANCE))
def test_methods_match_float64(method):
    q, k, v = inputs()
    out, lse = intfa.attention(q, k, v, method=method, return_lse=True)
    ref, ref_lse = attention64(q, k, v)
    assert out.shape == q.shape and out.dtype == np.float32
    assert rel_l1(out, ref) < TOLERANCE[method]
    # The exact log-sum-exp for every method (int8's smoothing shift is added back).
    assert np.abs(lse - ref_lse).max() < LSE_TOLERANCE[method]


@pytest.mark.parametrize("nq,nk", [(1, 1), (63, 65), (127, 127), (200, 65), (65, 200)])
def test_causal_bottom_right_and_unequal_lengths(nq, nk):
    q, k, v = inputs(nq=nq, nk=nk, seed=nq + nk)
    out, lse = intfa.attention(q, k, v, is_causal=True, return_lse=True)
    ref, ref_lse = attention64(q, k, v, causal=True)
    visible = np.isfinite(ref_lse)
    assert np.isnan(out).sum() == 0
    assert rel_l1(out[visible], ref[visible]) < TOLERANCE["int8"]
    # Rows that see no key (Nq > Nk) give zeros and a log-sum-exp of -inf.
    assert np.all(out[~visible] == 0) and np.all(np.isneginf(lse[~visible]))


def test_gqa_scale_and_float16():
    q, k, v = inputs(h=8, hkv=2, nq=70, nk=90, dtype=np.float16)
    # A K with a large channel mean: smoothing removes it, the log-sum-exp still holds it.
    k = (k + 3).astype(np.float16)
    out, lse = intfa.attention(q, k, v, scale=0.2, return_lse=True)
    ref, ref_lse = attention64(q, k, v, scale=0.2)
    assert out.dtype == np.float16
    assert rel_l1(out, ref) < TOLERANCE["int8"]
    assert np.abs(lse - ref_lse).max() < LSE_TOLERANCE["int8"]
    bnhd = [np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v)]
    assert np.abs(intfa.attention(*bnhd, scale=0.2, layout="bnhd", return_lse=True)[1] - ref_lse).max() < LSE_TOLERANCE["int8"]


def test_bnhd_layout_and_strided_views():
    q, k, v = inputs(nq=96)
    ref = attention64(q, k, v)[0]
    as_bnhd = [np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v)]
    out = intfa.attention(*as_bnhd, layout="bnhd")
    assert out.shape == as_bnhd[0].shape
    assert rel_l1(out.transpose(0, 2, 1, 3), ref) < TOLERANCE["int8"]
    # Every other token of a larger buffer: strides, not copies.
    wide = [np.repeat(x, 2, axis=2) for x in (q, k, v)]
    views = [x[:, :, ::2, :] for x in wide]
    assert not views[0].flags.c_contiguous
    assert rel_l1(intfa.attention(*views), ref) < TOLERANCE["int8"]


def test_rejects_bad_inputs():
    q, k, v = inputs()
    with pytest.raises(TypeError):
        intfa.attention(q.astype(np.int32), k, v)
    with pytest.raises(TypeError):
        intfa.attention(q.tolist(), k, v)
    with pytest.raises(ValueError, match="4 dimensions"):
        intfa.attention(q[0], k, v)
    with pytest.raises(ValueError, match="unknown method"):
        intfa.attention(q, k, v, method="int3")
    with pytest.raises(ValueError, match="layout"):
        intfa.attention(q, k, v, layout="nhd")
    with pytest.raises(ValueError, match="scale"):
        intfa.attention(q, k, v, scale=-1.0)
    with pytest.raises(ValueError, match="contiguous"):
        intfa.attention(np.asfortranarray(q), k, v)
    with pytest.raises(ValueError, match="k has shape"):
        intfa.attention(q, k[..., :32], v)
    with pytest.raises(ValueError, match="multiple"):
        intfa.attention(*inputs(h=3, hkv=2))
    with pytest.raises(ValueError, match="head dim 12"):
        intfa.attention(*inputs(d=12))
    bad = q.copy()
    bad[0, 1, 5, 7] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        intfa.attention(bad, k, v)
    # Without validation the caller takes responsibility, but nothing crashes.
    intfa.attention(bad, k, v, validate=False)


def test_unknown_grid_is_refused():
    with pytest.raises(ValueError, match="grid"):
        intfa.attention_quantized(None, grid="dynamic")
    # The C entry points refuse it too, before they need a device.
    lib = _lib.library()
    problem = _lib.Problem(1, 2, 2, 64, 64, 64, 0.0, 0, _lib.METHODS["int8"], 0)
    options = _lib.Options(ctypes.sizeof(_lib.Options), 7)
    status = lib.intfa_attention_quantized(None, ctypes.byref(problem), ctypes.byref(options), None, None, None, None)
    assert status == _lib.ERROR_INVALID_ARGUMENT
    assert b"grid" in lib.intfa_last_error_message()


def test_options_and_reserved_fields_are_checked():
    lib = _lib.library()
    assert lib.intfa_abi_version() == _lib.ABI_VERSION == 3
    problem = _lib.Problem(1, 2, 2, 64, 64, 64, 0.0, 0, _lib.METHODS["int8"], 0)

    def status(options, problem=problem):
        return lib.intfa_attention(None, ctypes.byref(problem), options, None, None, None, None, None, None, 0, None)

    # NULL options and a well-formed struct get as far as the missing context.
    for options in (None, ctypes.byref(_lib.Options.make("tiles"))):
        assert status(options) == _lib.ERROR_INVALID_ARGUMENT
        assert b"context" in lib.intfa_last_error_message()
    assert status(ctypes.byref(_lib.Options(4, 0))) == _lib.ERROR_INVALID_ARGUMENT
    assert b"options.size" in lib.intfa_last_error_message()
    reserved = _lib.Options.make()
    reserved.reserved[1] = 5
    assert status(ctypes.byref(reserved)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"options.reserved" in lib.intfa_last_error_message()
    # A caller built against a later header: unknown trailing bytes must be zero.
    newer = (ctypes.c_ubyte * 48)()
    ctypes.memmove(newer, ctypes.byref(_lib.Options.make()), ctypes.sizeof(_lib.Options))
    newer[0] = 48
    as_options = ctypes.cast(newer, ctypes.POINTER(_lib.Options))
    assert status(as_options) == _lib.ERROR_INVALID_ARGUMENT
    assert b"context" in lib.intfa_last_error_message()
    newer[40] = 1
    assert status(as_options) == _lib.ERROR_UNSUPPORTED
    assert b"newer" in lib.intfa_last_error_message()
    problem.reserved = 1
    assert status(None, problem) == _lib.ERROR_INVALID_ARGUMENT
    assert b"problem.reserved" in lib.intfa_last_error_message()


def test_c_structs_match_the_header():
    assert ctypes.sizeof(_lib.Problem) == 64
    assert ctypes.sizeof(_lib.Options) == 32
    assert ctypes.sizeof(_lib.Tensor) == 40
    assert ctypes.sizeof(_lib.Quantized) == 48
    assert ctypes.sizeof(_lib.QuantizedSizes) == 48


def test_workspace_and_quantized_sizes():
    lib = _lib.library()
    size = ctypes.c_size_t()
    fp16 = _lib.Problem(2, 4, 2, 100, 300, 64, 0.0, 0, _lib.METHODS["fp16"], 0)
    assert lib.intfa_workspace_size(ctypes.byref(fp16), _lib.DTYPE_FLOAT16, ctypes.byref(size)) == 0
    # fp16 inputs of the fp16 method are read in place: the workspace holds only the marks of
    # offending inputs, one byte per query row and one int32 per (batch, KV head).
    assert 2 * 4 * 100 + 2 * 2 * 4 <= size.value <= 2 * 4 * 100 + 2 * 2 * 4 + 3 * 256  # 256-byte slots
    int8 = _lib.Problem(2, 4, 2, 100, 300, 64, 0.0, 0, _lib.METHODS["int8"], 0)
    assert lib.intfa_workspace_size(ctypes.byref(int8), _lib.DTYPE_FLOAT16, ctypes.byref(size)) == 0
    assert size.value >= 2 * 4 * 100 * 64 + 2 * 2 * 300 * 64 * 2
    sizes = _lib.QuantizedSizes()
    assert lib.intfa_quantized_byte_counts(ctypes.byref(int8), ctypes.byref(sizes)) == 0
    # Vt rows padded to 384 keys (a multiple of 128), one K scale per group of 8 keys; the
    # scales are followed by the marks of offending inputs (a byte per query row, an int32
    # per (batch, KV head)).
    assert (sizes.q, sizes.k, sizes.vt) == (2 * 4 * 100 * 64, 2 * 2 * 300 * 64, 2 * 2 * 64 * 384)
    assert (sizes.q_scale, sizes.k_scale) == (2 * 4 * 100 * 4 + 2 * 4 * 100, 2 * 2 * 384 // 8 * 4 + 2 * 2 * 4)
    assert lib.intfa_quantized_byte_counts(ctypes.byref(fp16), ctypes.byref(sizes)) == _lib.ERROR_UNSUPPORTED
    assert b"no quantized form" in lib.intfa_last_error_message()


def test_c_errors_carry_status_and_message():
    lib = _lib.library()
    size = ctypes.c_size_t()
    assert lib.intfa_workspace_size(None, 0, ctypes.byref(size)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"problem" in lib.intfa_last_error_message()
    bad = _lib.Problem(1, 1, 1, 10, 10, 64, 0.0, 0, 99, 0)
    assert lib.intfa_workspace_size(ctypes.byref(bad), 0, ctypes.byref(size)) == _lib.ERROR_UNSUPPORTED
    assert lib.intfa_workspace_size(ctypes.byref(_lib.Problem(1, 1, 1, 10, 0, 64, 0.0, 0, 0, 0)), 0,
                                    ctypes.byref(size)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"keyLength" in lib.intfa_last_error_message()
    # A successful call clears the message.
    assert lib.intfa_workspace_size(ctypes.byref(_lib.Problem(1, 1, 1, 10, 10, 64, 0.0, 0, 0, 0)), 0,
                                    ctypes.byref(size)) == 0
    assert lib.intfa_last_error_message() == b""
    q = _lib.Tensor(None, 2, 0, 0, 0, 64)
    problem = _lib.Problem(1, 1, 1, 10, 10, 64, 0.0, 0, 0, 0)
    status = lib.intfa_attention_host(ctypes.byref(problem), ctypes.byref(q), ctypes.byref(q), ctypes.byref(q),
                                      ctypes.byref(q), None, 1, 0)
    assert status == _lib.ERROR_INVALID_ARGUMENT and b"NULL" in lib.intfa_last_error_message()


def test_gpu_calls_without_a_driver_raise():
    # This machine may have no CUDA driver; then the context fails cleanly with its reason.
    pointer = ctypes.c_void_p()
    status = _lib.library().intfa_context_create(0, ctypes.byref(pointer))
    if status == 0:
        _lib.library().intfa_context_destroy(pointer)
        pytest.skip("a CUDA device is present")
    assert status == _lib.ERROR_GPU
    assert b"driver" in _lib.library().intfa_last_error_message().lower()


def test_missing_library_is_a_clear_error():
    code = "import intfa, numpy as np; x = np.zeros((1,1,4,64), np.float32); intfa.attention(x, x, x)"
    env = dict(os.environ, INTFA_LIBRARY="/nonexistent/libintfa.so")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode != 0
    assert "cannot load the intfa library" in run.stderr


def test_version():
    assert intfa.version() == intfa.__version__


def test_int8_key_tile_comes_from_the_library():
    # The ring's slice boundaries (intfa.distributed) follow the scheme's tile, read from the
    # library rather than spelled again in Python.
    assert _lib.library().intfa_int8_key_tile() == 128


def test_kv_cache_entry_points_check_their_arguments():
    """The paged KV cache's C functions: sizes from the layout alone, and bad layouts or a
    missing context refused before any device is needed."""
    lib = _lib.library()
    cache = _lib.KVCache(64, 10, 8, 128, 3, 4, 256, *([None] * 7))
    sizes = _lib.KVCacheSizes()
    assert lib.intfa_kv_cache_byte_counts(ctypes.byref(cache), ctypes.byref(sizes)) == _lib.SUCCESS
    assert (sizes.codes, sizes.scales, sizes.means, sizes.block_table, sizes.lengths) == (
        10 * 8 * 64 * 128, 10 * 8 * 64 * 4, 3 * 8 * 128 * 4, 3 * 4 * 4, 3 * 4)
    bad = _lib.KVCache(300, 10, 8, 128, 3, 4, 256, *([None] * 7))
    assert lib.intfa_kv_cache_byte_counts(ctypes.byref(bad), ctypes.byref(sizes)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"pageSize" in lib.intfa_last_error_message()
    size = ctypes.c_size_t()
    assert lib.intfa_decode_workspace_size(None, ctypes.byref(cache), 32, 1, ctypes.byref(size)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"context" in lib.intfa_last_error_message()
    status = lib.intfa_decode(None, ctypes.byref(cache), 32, 1, 0.0, 1, None, None, None, None, 0, None)
    assert status == _lib.ERROR_INVALID_ARGUMENT
    status = lib.intfa_kv_append(None, None, None, None, 1, None)
    assert status == _lib.ERROR_INVALID_ARGUMENT and b"cache" in lib.intfa_last_error_message()


def test_varlen_entry_points_check_their_arguments():
    lib = _lib.library()
    offsets = (ctypes.c_int32 * 3)(0, 5, 12)
    size = ctypes.c_size_t()
    problem = _lib.Problem(2, 4, 2, 0, 0, 64, 0.0, 1, _lib.METHODS["int8"], 0)
    assert lib.intfa_varlen_workspace_size(ctypes.byref(problem), offsets, offsets, _lib.DTYPE_FLOAT16,
                                           ctypes.byref(size)) == _lib.SUCCESS
    with_lengths = _lib.Problem(2, 4, 2, 12, 12, 64, 0.0, 1, _lib.METHODS["int8"], 0)
    assert lib.intfa_varlen_workspace_size(ctypes.byref(with_lengths), offsets, offsets, _lib.DTYPE_FLOAT16,
                                           ctypes.byref(size)) == _lib.ERROR_INVALID_ARGUMENT
    assert b"offsets give the lengths" in lib.intfa_last_error_message()
    decreasing = (ctypes.c_int32 * 3)(0, 5, 4)
    assert lib.intfa_varlen_workspace_size(ctypes.byref(problem), decreasing, offsets, _lib.DTYPE_FLOAT16,
                                           ctypes.byref(size)) == _lib.ERROR_INVALID_ARGUMENT
    status = lib.intfa_attention_varlen(None, ctypes.byref(problem), None, None, None, None, None, offsets, None,
                                        None, 0, None)
    assert status == _lib.ERROR_INVALID_ARGUMENT and b"cu_seqlens_k" in lib.intfa_last_error_message()


def test_transformers_integration_imports_without_transformers():
    """The integration module imports anywhere; only its cache class, a transformers Cache
    subclass, needs transformers, and says so when it is missing."""
    import importlib.util
    import intfa.integrations.transformers as integration
    assert callable(integration.register) and callable(integration.attention_forward)
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(ImportError, match="needs transformers"):
            getattr(integration, "Int8PagedCache")
    with pytest.raises(AttributeError):
        getattr(integration, "NoSuchName")
