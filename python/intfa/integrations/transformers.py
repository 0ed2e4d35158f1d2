"""IntFlashAttention as a transformers attention implementation.

    import intfa.integrations.transformers as intfa_transformers
    intfa_transformers.register()              # once
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="intfa")

Causal and bidirectional attention without an explicit mask run on intfa's kernels (GQA
included); anything they cannot express (a padding or custom mask, attention dropout while
training, CPU or fp32 tensors, an unsupported head dim) falls back to SDPA, with one warning
per reason.
"""

import warnings

import intfa

NAME = "intfa"
_warned = set()


def _fallback(reason, module, query, key, value, attention_mask, **kwargs):
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"intfa attention falls back to SDPA: {reason}", stacklevel=3)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                      method="int8", **kwargs):
    """The transformers attention interface: query [B, H, Nq, D], key and value [B, Hkv, Nk, D];
    returns ([B, Nq, H, D], None)."""
    import torch
    arguments = dict(dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    if attention_mask is not None:
        return _fallback("an explicit attention mask", module, query, key, value, attention_mask, **arguments)
    if dropout and module.training:
        return _fallback("attention dropout", module, query, key, value, attention_mask, **arguments)
    if not query.is_cuda or query.dtype not in (torch.float16, torch.bfloat16):
        return _fallback("tensors that are not fp16/bf16 CUDA tensors", module, query, key, value, attention_mask,
                         **arguments)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(causal) and query.shape[2] > 1  # one new token sees the whole cache
    try:
        out = intfa.attention(query, key, value, is_causal=causal, scale=scaling, method=method)
    except intfa.UnsupportedError as error:  # e.g. a head dim without a kernel
        return _fallback(str(error), module, query, key, value, attention_mask, **arguments)
    return out.transpose(1, 2), None


def register(name=NAME):
    """Registers the attention function (and SDPA's mask construction, which leaves the mask
    out where causality alone describes it) under ``name`` with transformers."""
    from transformers import AttentionInterface
    AttentionInterface.register(name, attention_forward)
    try:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        AttentionMaskInterface.register(name, sdpa_mask)
    except ImportError:
        pass
    return name
