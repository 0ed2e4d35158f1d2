"""The package's CUDA entry points as torch.library custom ops, so that torch.compile traces a
call as one node of its graph instead of breaking the graph there. Each op's fake
implementation gives its outputs' shapes and dtypes without running anything. The ops are
registered once, when torch is present (the package never imports torch itself)."""

import threading
from typing import List, Optional, Tuple

import torch

_lock = threading.Lock()
_registered = False

Tensor = torch.Tensor


def _heads_and_tokens(x, layout):
    """(heads, tokens) of a [B, H, N, D] or [B, N, H, D] tensor."""
    return (x.shape[1], x.shape[2]) if layout == "bhnd" else (x.shape[2], x.shape[1])


def register(package):
    """Registers intfa::attention, intfa::merge_partial, intfa::quantize,
    intfa::attention_quantized, intfa::kv_append, intfa::decode and intfa::attention_varlen over
    `package`'s CUDA entry points (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return

        @torch.library.custom_op("intfa::attention", mutates_args=(), device_types="cuda")
        def attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: Optional[float],
                      method: str, layout: str, return_lse: bool, validate: bool) -> Tuple[Tensor, Tensor]:
            result = package._attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, validate)
            # An op returns the same outputs every time: without the log-sum-exp, an empty one.
            return result if return_lse else (result, q.new_empty((0,), dtype=torch.float32))

        @attention.register_fake
        def _(q, k, v, is_causal, scale, method, layout, return_lse, validate):
            h, n = _heads_and_tokens(q, layout)
            return q.new_empty(q.shape), q.new_empty((q.shape[0], h, n) if return_lse else (0,), dtype=torch.float32)

        @torch.library.custom_op("intfa::merge_partial", mutates_args=("out", "lse"), device_types="cuda")
        def merge_partial(out: Tensor, lse: Tensor, part: Tensor, part_lse: Tensor) -> None:
            package._merge_partial_cuda(out, lse, part, part_lse)

        @merge_partial.register_fake
        def _(out, lse, part, part_lse):
            return None

        @torch.library.custom_op("intfa::quantize", mutates_args=(), device_types="cuda")
        def quantize(q: Tensor, k: Tensor, v: Tensor, method: str, scale: Optional[float], layout: str,
                     k_mean: Optional[Tensor], v_amax: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
            result = package._quantize_cuda(q, k, v, method, scale, layout, k_mean, v_amax)
            return result.q, result.q_scale, result.k, result.k_scale, result.vt, result.v_scale

        @quantize.register_fake
        def _(q, k, v, method, scale, layout, k_mean, v_amax):
            (h, nq), (hkv, nk) = _heads_and_tokens(q, layout), _heads_and_tokens(k, layout)
            shape = (q.shape[0], h, hkv, nq, nk, q.shape[3])
            return tuple(q.new_empty((count,), dtype=dtype) for count, dtype in package._quantized_buffers(torch, shape, method))

        @torch.library.custom_op("intfa::attention_quantized", mutates_args=(), device_types="cuda")
        def attention_quantized(q: Tensor, q_scale: Tensor, k: Tensor, k_scale: Tensor, vt: Tensor, v_scale: Tensor,
                                method: str, shape: List[int], scale: Optional[float], is_causal: bool,
                                dtype: torch.dtype, layout: str, return_lse: bool, grid: Optional[str]) -> Tuple[Tensor, Tensor]:
            inputs = package.QuantizedInputs(method, q, q_scale, k, k_scale, vt, v_scale, *shape, scale)
            result = package._attention_quantized_cuda(inputs, is_causal, dtype, layout, return_lse, grid)
            return result if return_lse else (result, q.new_empty((0,), dtype=torch.float32))

        @attention_quantized.register_fake
        def _(q, q_scale, k, k_scale, vt, v_scale, method, shape, scale, is_causal, dtype, layout, return_lse, grid):
            b, h, _, nq, _, d = shape
            out = q.new_empty((b, h, nq, d) if layout == "bhnd" else (b, nq, h, d), dtype=dtype)
            return out, q.new_empty((b, h, nq) if return_lse else (0,), dtype=torch.float32)

        cache_tensors = ("key_codes", "value_codes", "key_scales", "value_scales", "key_means", "lengths")

        @torch.library.custom_op("intfa::kv_append", mutates_args=cache_tensors, device_types="cuda")
        def kv_append(key_codes: Tensor, value_codes: Tensor, key_scales: Tensor, value_scales: Tensor,
                      key_means: Tensor, block_table: Tensor, lengths: Tensor, k: Tensor, v: Tensor, layout: str) -> None:
            package._kv_append_cuda(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths,
                                    k, v, layout)

        @kv_append.register_fake
        def _(key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, k, v, layout):
            return None

        @torch.library.custom_op("intfa::decode", mutates_args=(), device_types="cuda")
        def decode(q: Tensor, key_codes: Tensor, value_codes: Tensor, key_scales: Tensor, value_scales: Tensor,
                   key_means: Tensor, block_table: Tensor, lengths: Tensor, max_length: int, is_causal: bool,
                   scale: Optional[float], layout: str, return_lse: bool) -> Tuple[Tensor, Tensor]:
            result = package._decode_cuda(q, key_codes, value_codes, key_scales, value_scales, key_means, block_table,
                                          lengths, max_length, is_causal, scale, layout, return_lse)
            return result if return_lse else (result, q.new_empty((0,), dtype=torch.float32))

        @decode.register_fake
        def _(q, key_codes, value_codes, key_scales, value_scales, key_means, block_table, lengths, max_length,
              is_causal, scale, layout, return_lse):
            b, n, h = (q.shape[0], q.shape[1], q.shape[2]) if layout == "bnhd" else (q.shape[0], q.shape[2], q.shape[1])
            return q.new_empty(q.shape), q.new_empty((b, h, n) if return_lse else (0,), dtype=torch.float32)

        @torch.library.custom_op("intfa::attention_varlen", mutates_args=(), device_types="cuda")
        def attention_varlen(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: List[int], cu_seqlens_k: List[int],
                             is_causal: bool, scale: Optional[float], method: str) -> Tensor:
            return package._attention_varlen_cuda(q, k, v, cu_seqlens_q, cu_seqlens_k, is_causal, scale, method)

        @attention_varlen.register_fake
        def _(q, k, v, cu_seqlens_q, cu_seqlens_k, is_causal, scale, method):
            return q.new_empty(q.shape)

        _registered = True
