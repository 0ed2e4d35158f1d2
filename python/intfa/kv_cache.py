"""Decode on a paged INT8 KV cache (docs/SCHEMES.md, "The INT8 KV cache"): ``KVCache`` holds the
pages as torch tensors on a CUDA device and keeps the block tables; ``KVCache.append`` quantizes
new tokens into it on the GPU and ``decode`` attends a few new query tokens per sequence to it,
both on torch's current stream, zero copy."""

import ctypes
import math
import numbers

from . import _lib

_LAYOUTS = ("bnhd", "bhnd")
_MAX_SEQUENCES = 65535


def _torch():
    import torch
    return torch


def _positive_int(value, name, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < 1 or (upper is not None and value > upper):
        bound = f"between 1 and {upper}" if upper is not None else "at least 1"
        raise ValueError(f"{name} must be {bound}, not {value}")
    return int(value)


class KVCache:
    """A paged INT8 KV cache for ``batch`` sequences of up to ``max_length`` tokens, on a CUDA
    device.

    Pages of ``page_size`` tokens (1 to 256) hold, per KV head, the K and V codes (int8) and
    one float32 scale per token for each: ``kv_heads * (2 * head_dim + 8)`` bytes per token,
    0.52x an fp16 cache's at ``head_dim=128``. ``pages`` (default: enough for every sequence at
    ``max_length``) sets the pool; sequences take pages from it as they grow. The tensors
    (``key_codes``, ``value_codes``, ``key_scales``, ``value_scales``, ``key_means``,
    ``block_table``, ``lengths``) are the cache's storage, in the layout of ``intfa_kv_cache``
    in intfa.h; the host keeps its own copy of the lengths (``sequence_lengths``).

    ``append`` quantizes new tokens: a sequence's first append (its prefill) fixes K's channel
    means over its own tokens, and later tokens are coded against them; nothing stored is
    ever recoded. A token holding NaN or Inf is stored with NaN scales, so every decode row
    that sees it is NaN.
    """

    def __init__(self, batch, kv_heads, head_dim, max_length, *, page_size=64, pages=None, device=None):
        torch = _torch()
        batch = _positive_int(batch, "batch", _MAX_SEQUENCES)
        kv_heads = _positive_int(kv_heads, "kv_heads")
        head_dim = _positive_int(head_dim, "head_dim", 256)
        if head_dim % 8:
            raise ValueError(f"head_dim must be a multiple of 8, not {head_dim}")
        max_length = _positive_int(max_length, "max_length", 2**31 - 1)
        page_size = _positive_int(page_size, "page_size", 256)
        max_pages = -(-max_length // page_size)
        pages = batch * max_pages if pages is None else _positive_int(pages, "pages")
        if pages * kv_heads * page_size >= 2**31:
            raise ValueError(f"a pool of {pages} pages x {kv_heads} KV heads x {page_size} tokens exceeds 2^31 - 1 slots")
        device = torch.device("cuda" if device is None else device)
        if device.type != "cuda":
            raise ValueError(f"a KVCache lives on a CUDA device, not {device}")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.page_size, self.max_length, self.max_pages = page_size, max_length, max_pages

        def zeros(shape, dtype, what, fill=0):
            try:
                return torch.full(shape, fill, dtype=dtype, device=device)
            except torch.cuda.OutOfMemoryError as error:
                count = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
                raise MemoryError(f"out of GPU memory: {count} bytes requested for the cache's {what}: {error}") from error

        self.key_codes = zeros((pages, kv_heads, page_size, head_dim), torch.int8, "K codes")
        self.value_codes = zeros((pages, kv_heads, page_size, head_dim), torch.int8, "V codes")
        self.key_scales = zeros((pages, kv_heads, page_size), torch.float32, "K scales")
        self.value_scales = zeros((pages, kv_heads, page_size), torch.float32, "V scales")
        self.key_means = zeros((batch, kv_heads, head_dim), torch.float32, "K means")
        self.block_table = zeros((batch, max_pages), torch.int32, "block table", fill=-1)
        self.lengths = zeros((batch,), torch.int32, "lengths")
        self._tables = [[] for _ in range(batch)]
        self._lengths = [0] * batch
        self._free = list(range(pages - 1, -1, -1))
        self._decode_cache = {}

    @property
    def batch(self):
        return self.block_table.shape[0]

    @property
    def kv_heads(self):
        return self.key_codes.shape[1]

    @property
    def head_dim(self):
        return self.key_codes.shape[3]

    @property
    def pages(self):
        return self.key_codes.shape[0]

    @property
    def free_pages(self):
        return len(self._free)

    @property
    def bytes_per_token(self):
        """Device bytes one token takes over all KV heads (codes and scales)."""
        return self.kv_heads * (2 * self.head_dim + 8)

    def sequence_lengths(self):
        """Tokens stored per sequence (the host's count of every append issued)."""
        return list(self._lengths)

    def _decode_resources(self, heads, query_length):
        """The cache's intfa_kv_cache (checked once) and a decode workspace for `heads` and
        `query_length`, sized for max_length (the planner's splits only grow with the length),
        kept for later steps: a decode step then costs one C call and its output."""
        key = (heads, query_length)
        resources = self._decode_cache.get(key)
        if resources is None:
            torch = _torch()
            cache = _cache_struct(*self._tensors(), self.max_length)
            size = ctypes.c_size_t()
            _lib.check(_lib.library().intfa_decode_workspace_size(
                _lib.context(self.device.index), ctypes.byref(cache), heads, query_length, ctypes.byref(size)))
            workspace = torch.empty((max(size.value, 1),), dtype=torch.uint8, device=self.device)
            resources = (cache, workspace, size.value)
            self._decode_cache[key] = resources
        return resources

    def _tensors(self, start=0, stop=None):
        stop = self.batch if stop is None else stop
        return (self.key_codes, self.value_codes, self.key_scales, self.value_scales, self.key_means[start:stop],
                self.block_table[start:stop], self.lengths[start:stop])

    def append(self, k, v, *, layout="bnhd", sequences=None):
        """Quantizes new tokens into the cache: ``k`` and ``v`` float16/bfloat16 CUDA tensors
        [S, T, Hkv, D] (``layout="bnhd"``) or [S, Hkv, T, D] (``"bhnd"``), T new tokens of each
        of the S sequences in ``sequences`` (a range of the cache's, default all). Pages come
        from the pool (MemoryError when it runs out, ValueError past ``max_length``); the
        coding runs on torch's current stream without host synchronization."""
        torch = _torch()
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be 'bnhd' or 'bhnd', not {layout!r}")
        if sequences is None:
            sequences = range(self.batch)
        if not isinstance(sequences, range) or sequences.step != 1 or len(sequences) == 0 \
                or sequences.start < 0 or sequences.stop > self.batch:
            raise ValueError(f"sequences must be a non-empty range within range({self.batch}), not {sequences!r}")
        for name, x in (("k", k), ("v", v)):
            if not isinstance(x, torch.Tensor) or not x.is_cuda:
                raise TypeError(f"{name} must be a CUDA torch tensor")
            if x.device != self.device:
                raise ValueError(f"{name} is on {x.device}; the cache is on {self.device}")
            if x.ndim != 4:
                raise ValueError(f"{name} must have 4 dimensions, not {x.ndim}")
        expected = (len(sequences), None, self.kv_heads, self.head_dim) if layout == "bnhd" \
            else (len(sequences), self.kv_heads, None, self.head_dim)
        tokens = k.shape[1] if layout == "bnhd" else k.shape[2]
        for name, x in (("k", k), ("v", v)):
            shape = tuple(x.shape)
            if any(e is not None and e != n for e, n in zip(expected, shape)) or shape != tuple(k.shape):
                dims = "S, T, Hkv, D" if layout == "bnhd" else "S, Hkv, T, D"
                raise ValueError(f"{name} has shape {shape}; expected [{dims}] = "
                                 f"{[n if n is not None else tokens for n in expected]}")
        if tokens == 0:
            return
        size = self.page_size
        longest = max(self._lengths[s] for s in sequences) + tokens
        if longest > self.max_length:
            raise ValueError(f"{tokens} more tokens would take a sequence to {longest}, past max_length={self.max_length}")
        needed = [-(-(self._lengths[s] + tokens) // size) for s in sequences]
        missing = sum(max(0, n - len(self._tables[s])) for s, n in zip(sequences, needed))
        if missing > len(self._free):
            raise MemoryError(f"the cache needs {missing} more pages of {size} tokens; {len(self._free)} are free")
        for s, n in zip(sequences, needed):
            first = len(self._tables[s])
            if n > first:
                added = [self._free.pop() for _ in range(n - first)]
                self._tables[s] += added
                self.block_table[s, first:n] = torch.tensor(added, dtype=torch.int32).to(self.device)
        tensors = self._tensors(sequences.start, sequences.stop)
        from . import _eager, _ops
        if _eager(k):
            _kv_append_cuda(*tensors, k, v, layout)
        else:
            _ops().kv_append(*tensors, k, v, layout)
        for s in sequences:
            self._lengths[s] += tokens


def decode(q, cache, *, is_causal=True, scale=None, layout="bnhd", return_lse=False):
    """Attention of new query tokens per sequence on ``cache`` (their keys and values appended
    already): ``q`` a float16/bfloat16 CUDA tensor [B, Nq, H, D] (``layout="bnhd"``) or
    [B, H, Nq, D] (``"bhnd"``) with B the cache's batch, H a multiple of its KV heads with
    H / Hkv <= 16, D 64 or 128. Nq is a decode step (one token, or a few for speculative
    decoding) or a chunk of a prompt (chunked prefill): the kernel takes the tokens in tiles of
    16 / (H / Hkv), each reading the keys its tokens see, so a step of up to that many tokens
    reads the cache once. With ``is_causal``, query i of a sequence of n tokens sees keys
    j <= n - Nq + i (the new tokens see each other causally); else every cached key.
    Returns the output in q's layout and dtype, and with ``return_lse`` the log-sum-exp
    [B, H, Nq] (float32, natural log) of the scores with K's prefill means subtracted, which
    merges exactly with other pieces of the same sequence. Runs on torch's current stream,
    splitting long sequences over the SMs, without host synchronization."""
    torch = _torch()
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be an intfa.KVCache, not {type(cache).__name__}")
    if not isinstance(q, torch.Tensor) or not q.is_cuda:
        raise TypeError("q must be a CUDA torch tensor")
    if q.device != cache.device:
        raise ValueError(f"q is on {q.device}; the cache is on {cache.device}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'bnhd' or 'bhnd', not {layout!r}")
    if q.ndim != 4:
        raise ValueError(f"q must have 4 dimensions, not {q.ndim}")
    query_length = q.shape[1] if layout == "bnhd" else q.shape[2]
    if is_causal:
        short = [s for s, n in enumerate(cache.sequence_lengths()) if n < query_length]
        if short:
            raise ValueError(f"sequence {short[0]} holds {cache.sequence_lengths()[short[0]]} tokens; append the "
                             f"{query_length} new tokens' keys and values before a causal decode")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
                              or not (math.isfinite(scale) and scale > 0)):
        raise ValueError(f"scale must be a finite positive number or None, not {scale!r}")
    max_length = max(cache.sequence_lengths())
    from . import _eager, _ops
    if _eager(q):
        return _decode_launch(q, cache, max_length, bool(is_causal), scale, layout, bool(return_lse))
    out, lse = _ops().decode(q, *cache._tensors(), max_length, bool(is_causal), None if scale is None else float(scale),
                             layout, bool(return_lse))
    return (out, lse) if return_lse else out


def _cache_struct(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, max_length):
    """The intfa_kv_cache of a cache's tensors, after checking their types and shapes."""
    torch = _torch()
    pages, kv_heads, page_size, head_dim = key_codes.shape
    expected = ((key_codes, torch.int8, (pages, kv_heads, page_size, head_dim)),
                (value_codes, torch.int8, (pages, kv_heads, page_size, head_dim)),
                (key_scales, torch.float32, (pages, kv_heads, page_size)),
                (value_scales, torch.float32, (pages, kv_heads, page_size)),
                (key_means, torch.float32, (block_table.shape[0], kv_heads, head_dim)),
                (block_table, torch.int32, tuple(block_table.shape)),
                (lengths, torch.int32, (block_table.shape[0],)))
    for tensor, dtype, shape in expected:
        if tensor.dtype != dtype or tuple(tensor.shape) != shape or not tensor.is_contiguous():
            raise ValueError(f"a cache tensor of dtype {tensor.dtype} and shape {tuple(tensor.shape)} is not the "
                             f"contiguous {dtype} {list(shape)} of the cache's layout")
    return _lib.KVCache(page_size, pages, kv_heads, head_dim, block_table.shape[0], block_table.shape[1], max_length,
                        *(t.data_ptr() for t in (key_codes, value_codes, key_scales, value_scales, key_means,
                                                 block_table, lengths)))


def _c_tensor(x, name, layout):
    """The intfa_tensor of a [B, N, H, D] or [B, H, N, D] float16/bfloat16 CUDA tensor (the
    package's one view of a 4-D tensor)."""
    from . import _view
    return _view(x, name, layout, gpu=True).c()


def _kv_append_cuda(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, k, v, layout):
    torch = _torch()
    if k.dtype != v.dtype:
        raise TypeError(f"k and v must share one dtype (k: {k.dtype}, v: {v.dtype})")
    cache = _cache_struct(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths,
                          block_table.shape[1] * key_codes.shape[2])
    tokens = k.shape[1] if layout == "bnhd" else k.shape[2]
    ck, cv = _c_tensor(k, "k", layout), _c_tensor(v, "v", layout)
    _lib.check(_lib.library().intfa_kv_append(
        _lib.context(k.device.index), ctypes.byref(cache), ctypes.byref(ck), ctypes.byref(cv), tokens,
        torch.cuda.current_stream(k.device).cuda_stream))


def _decode_launch(q, cache, max_length, is_causal, scale, layout, return_lse):
    """One decode step on a KVCache with its kept resources (the eager path)."""
    torch = _torch()
    b, heads, query_length = (q.shape[0], q.shape[2], q.shape[1]) if layout == "bnhd" else q.shape[:3]
    if b != cache.batch or q.shape[3] != cache.head_dim:
        raise ValueError(f"q has shape {tuple(q.shape)} ({layout}); the cache holds {cache.batch} sequences of head dim "
                         f"{cache.head_dim}")
    struct, workspace, workspace_bytes = cache._decode_resources(heads, query_length)
    step = _lib.KVCache.from_buffer_copy(struct)
    step.max_length = max_length
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((b, heads, query_length), dtype=torch.float32, device=q.device) if return_lse else None
    cq, cout = _c_tensor(q, "q", layout), _c_tensor(out, "out", layout)
    _lib.check(_lib.library().intfa_decode(
        _lib.context(q.device.index), ctypes.byref(step), heads, query_length, 0.0 if scale is None else float(scale),
        int(is_causal), ctypes.byref(cq), ctypes.byref(cout), lse.data_ptr() if lse is not None else None,
        workspace.data_ptr(), workspace_bytes, torch.cuda.current_stream(q.device).cuda_stream))
    return (out, lse) if return_lse else out


def _decode_cuda(q, key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, max_length,
                 is_causal, scale, layout, return_lse):
    torch = _torch()
    cache = _cache_struct(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, max_length)
    b, heads, query_length = (q.shape[0], q.shape[2], q.shape[1]) if layout == "bnhd" else q.shape[:3]
    if b != block_table.shape[0]:
        raise ValueError(f"q holds {b} sequences; the cache {block_table.shape[0]}")
    if q.shape[3] != key_codes.shape[3]:
        raise ValueError(f"q's head dim is {q.shape[3]}; the cache's {key_codes.shape[3]}")
    context = _lib.context(q.device.index)
    size = ctypes.c_size_t()
    _lib.check(_lib.library().intfa_decode_workspace_size(context, ctypes.byref(cache), heads, query_length,
                                                          ctypes.byref(size)))
    workspace = torch.empty((max(size.value, 1),), dtype=torch.uint8, device=q.device)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((b, heads, query_length), dtype=torch.float32, device=q.device) if return_lse else None
    cq, cout = _c_tensor(q, "q", layout), _c_tensor(out, "out", layout)
    _lib.check(_lib.library().intfa_decode(
        context, ctypes.byref(cache), heads, query_length, 0.0 if scale is None else float(scale), int(is_causal),
        ctypes.byref(cq), ctypes.byref(cout), lse.data_ptr() if lse is not None else None, workspace.data_ptr(),
        size.value, torch.cuda.current_stream(q.device).cuda_stream))
    return (out, lse) if return_lse else out
