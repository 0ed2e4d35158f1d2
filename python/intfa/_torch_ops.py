"""The package's CUDA entry points as torch.library custom ops, so that torch.compile traces a
call as one node of its graph instead of breaking the graph there. Each op's fake
implementation gives its outputs' shapes and dtypes without running anything. The ops are
registered once, when torch is present (the package never imports torch itself)."""

import threading
from typing import Optional, Tuple

import torch

_lock = threading.Lock()
_registered = False


def register(attention_cuda, merge_partial_cuda):
    """Registers intfa::attention and intfa::merge_partial over the package's CUDA entry
    points (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return

        @torch.library.custom_op("intfa::attention", mutates_args=(), device_types="cuda")
        def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool, scale: Optional[float],
                      method: str, layout: str, return_lse: bool, validate: bool) -> Tuple[torch.Tensor, torch.Tensor]:
            result = attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, validate)
            # An op returns the same outputs every time: without the log-sum-exp, an empty one.
            return result if return_lse else (result, q.new_empty((0,), dtype=torch.float32))

        @attention.register_fake
        def _(q, k, v, is_causal, scale, method, layout, return_lse, validate):
            b, h, n = (q.shape[0], q.shape[1], q.shape[2]) if layout == "bhnd" else (q.shape[0], q.shape[2], q.shape[1])
            return q.new_empty(q.shape), q.new_empty((b, h, n) if return_lse else (0,), dtype=torch.float32)

        @torch.library.custom_op("intfa::merge_partial", mutates_args=("out", "lse"), device_types="cuda")
        def merge_partial(out: torch.Tensor, lse: torch.Tensor, part: torch.Tensor, part_lse: torch.Tensor) -> None:
            merge_partial_cuda(out, lse, part, part_lse)

        @merge_partial.register_fake
        def _(out, lse, part, part_lse):
            return None

        _registered = True
