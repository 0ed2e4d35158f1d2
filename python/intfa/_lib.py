"""ctypes binding of the C interface (include/intfa.h in the repository).

The shared library is ``libintfa.so`` beside this file (as the wheel installs it), or the
path in the ``INTFA_LIBRARY`` environment variable (a development build:
``.build/release/libintfa_c.so``).
"""

import ctypes
import os
import threading

# intfa_status
SUCCESS = 0
ERROR_INVALID_ARGUMENT = 1
ERROR_UNSUPPORTED = 2
ERROR_NON_FINITE_INPUT = 3
ERROR_GPU = 4
ERROR_OUT_OF_MEMORY = 5
ERROR_WORKSPACE_TOO_SMALL = 6

# intfa_dtype
DTYPE_FLOAT16 = 0
DTYPE_BFLOAT16 = 1
DTYPE_FLOAT32 = 2

METHODS = {"int8": 0, "int8-paper": 1, "fp8-e4m3": 2, "fp16": 3, "fp32": 4}


class Problem(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int64),
        ("heads", ctypes.c_int64),
        ("kv_heads", ctypes.c_int64),
        ("query_length", ctypes.c_int64),
        ("key_length", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("softmax_scale", ctypes.c_float),
        ("causal", ctypes.c_int32),
        ("method", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
    ]


# intfa_grid
GRIDS = {None: 0, "persistent": 1, "tiles": 2}

# The INTFA_ABI_VERSION these bindings are written for.
ABI_VERSION = 3


class Options(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("grid", ctypes.c_int32),
        ("reserved", ctypes.c_int64 * 3),
    ]

    @classmethod
    def make(cls, grid=None):
        return cls(ctypes.sizeof(cls), GRIDS[grid])


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
        ("stride_batch", ctypes.c_int64),
        ("stride_head", ctypes.c_int64),
        ("stride_token", ctypes.c_int64),
    ]


class Quantized(ctypes.Structure):
    _fields_ = [
        ("q", ctypes.c_void_p),
        ("q_scale", ctypes.c_void_p),
        ("k", ctypes.c_void_p),
        ("k_scale", ctypes.c_void_p),
        ("vt", ctypes.c_void_p),
        ("v_scale", ctypes.c_void_p),
    ]


class QuantizedSizes(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("q", "q_scale", "k", "k_scale", "vt", "v_scale")]


class KVCache(ctypes.Structure):
    """intfa_kv_cache: a paged INT8 KV cache in device memory the caller owns."""
    _fields_ = [(name, ctypes.c_int64) for name in
                ("page_size", "page_count", "kv_heads", "head_dim", "sequences", "max_pages", "max_length")] + [
        (name, ctypes.c_void_p) for name in
        ("key_codes", "value_codes", "key_scales", "value_scales", "key_means", "block_table", "lengths")]


class KVCacheSizes(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("codes", "scales", "means", "block_table", "lengths")]


class IntfaError(RuntimeError):
    """A failure reported by the library; ``status`` is its intfa_status code."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class UnsupportedError(ValueError):
    """A valid call that this backend or device has no kernel for (a head dim, a method, an
    element type): INTFA_ERROR_UNSUPPORTED. Callers that can fall back to another
    implementation catch this rather than every ValueError."""


_P = ctypes.POINTER
_SIGNATURES = {
    "intfa_version": (ctypes.c_char_p, []),
    "intfa_abi_version": (ctypes.c_int32, []),
    "intfa_int8_key_tile": (ctypes.c_int32, []),
    "intfa_last_error_message": (ctypes.c_char_p, []),
    "intfa_context_create": (ctypes.c_int, [ctypes.c_int32, _P(ctypes.c_void_p)]),
    "intfa_context_destroy": (None, [ctypes.c_void_p]),
    "intfa_workspace_size": (ctypes.c_int, [_P(Problem), ctypes.c_int32, _P(ctypes.c_size_t)]),
    "intfa_attention": (ctypes.c_int, [ctypes.c_void_p, _P(Problem), _P(Options), _P(Tensor), _P(Tensor), _P(Tensor),
                                       _P(Tensor), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
    "intfa_attention_host": (ctypes.c_int, [_P(Problem), _P(Tensor), _P(Tensor), _P(Tensor), _P(Tensor),
                                            ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]),
    "intfa_quantized_byte_counts": (ctypes.c_int, [_P(Problem), _P(QuantizedSizes)]),
    "intfa_quantize": (ctypes.c_int, [ctypes.c_void_p, _P(Problem), _P(Tensor), _P(Tensor), _P(Tensor),
                                      ctypes.c_void_p, ctypes.c_void_p, _P(Quantized),
                                      ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
    "intfa_attention_quantized": (ctypes.c_int, [ctypes.c_void_p, _P(Problem), _P(Options), _P(Quantized),
                                                 _P(Tensor), ctypes.c_void_p, ctypes.c_void_p]),
    "intfa_merge_partial": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                           ctypes.c_int64, _P(Tensor), _P(Tensor), _P(Tensor), _P(Tensor),
                                           ctypes.c_void_p]),
    "intfa_varlen_workspace_size": (ctypes.c_int, [_P(Problem), _P(ctypes.c_int32), _P(ctypes.c_int32), ctypes.c_int32,
                                                   _P(ctypes.c_size_t)]),
    "intfa_attention_varlen": (ctypes.c_int, [ctypes.c_void_p, _P(Problem), _P(Options), _P(Tensor), _P(Tensor),
                                              _P(Tensor), _P(Tensor), _P(ctypes.c_int32), _P(ctypes.c_int32),
                                              ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
    "intfa_kv_cache_byte_counts": (ctypes.c_int, [_P(KVCache), _P(KVCacheSizes)]),
    "intfa_kv_append": (ctypes.c_int, [ctypes.c_void_p, _P(KVCache), _P(Tensor), _P(Tensor), ctypes.c_int64,
                                       ctypes.c_void_p]),
    "intfa_decode_workspace_size": (ctypes.c_int, [ctypes.c_void_p, _P(KVCache), ctypes.c_int64, ctypes.c_int64,
                                                   _P(ctypes.c_size_t)]),
    "intfa_decode": (ctypes.c_int, [ctypes.c_void_p, _P(KVCache), ctypes.c_int64, ctypes.c_int64, ctypes.c_float,
                                    ctypes.c_int32, _P(Tensor), _P(Tensor), ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_size_t, ctypes.c_void_p]),
}

_library = None
_library_lock = threading.Lock()


def library():
    """The loaded shared library (loaded on first use)."""
    global _library
    with _library_lock:
        if _library is None:
            path = os.environ.get("INTFA_LIBRARY") or os.path.join(os.path.dirname(__file__), "libintfa.so")
            try:
                lib = ctypes.CDLL(path)
            except OSError as error:
                raise RuntimeError(f"cannot load the intfa library at {path}: {error}") from error
            try:
                found = lib.intfa_abi_version()
            except AttributeError:
                found = 1  # version 1 had no intfa_abi_version
            if found != ABI_VERSION:
                raise RuntimeError(f"the intfa library at {path} has C ABI version {found}; "
                                   f"this Python package needs version {ABI_VERSION} (install matching versions)")
            for name, (result, arguments) in _SIGNATURES.items():
                function = getattr(lib, name)
                function.restype = result
                function.argtypes = arguments
            _library = lib
        return _library


def check(status):
    """Raises the Python exception for a failed call's status and message: ValueError for an
    invalid value (shape, stride, head dim, NaN/Inf with validation, a workspace too small) or
    UnsupportedError, a ValueError, for one this device has no kernel for; MemoryError for memory that could not be had, IntfaError for the
    driver, NVRTC and CUDA calls."""
    if status == SUCCESS:
        return
    message = library().intfa_last_error_message().decode("utf-8", "replace")
    if status == ERROR_UNSUPPORTED:
        raise UnsupportedError(message)
    if status in (ERROR_INVALID_ARGUMENT, ERROR_NON_FINITE_INPUT, ERROR_WORKSPACE_TOO_SMALL):
        raise ValueError(message)
    if status == ERROR_OUT_OF_MEMORY:
        raise MemoryError(message)
    raise IntfaError(message, status)


def version():
    return library().intfa_version().decode()


_contexts = {}
_contexts_lock = threading.Lock()


def context(device):
    """The library's context for CUDA device ``device`` (one per device, kept for the process)."""
    with _contexts_lock:
        handle = _contexts.get(device)
        if handle is None:
            pointer = ctypes.c_void_p()
            check(library().intfa_context_create(device, ctypes.byref(pointer)))
            handle = _contexts[device] = pointer
        return handle
