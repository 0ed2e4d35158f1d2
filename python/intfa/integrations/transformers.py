"""IntFlashAttention as a transformers attention implementation, and a paged INT8 KV cache for
transformers' decode loop.

    import intfa.integrations.transformers as intfa_transformers
    intfa_transformers.register()              # once
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="intfa")

Causal and bidirectional attention without an explicit mask run on intfa's kernels (GQA
included); anything they cannot express (a padding or custom mask, attention dropout while
training, CPU or fp32 tensors, an unsupported head dim) falls back to SDPA, with one warning
per reason. That holds for transformers' own caches (DynamicCache and the like).

    cache = intfa_transformers.Int8PagedCache(model.config, batch_size, max_length)
    model.generate(input_ids, max_new_tokens=n, past_key_values=cache)

``Int8PagedCache`` keeps each layer's keys and values in an ``intfa.KVCache`` (INT8 codes and
one float32 scale per token and KV head: ``kv_heads * (2 * head_dim + 8)`` bytes per token and
layer, 0.52x an fp16 cache at head dim 128), so decode steps run ``intfa.decode`` on the pages
and no fp16 copy of the past is kept. The prompt (the first forward, the cache empty) runs
intfa's prefill attention on its own fp16 keys and values, which are quantized into the cache
on the way. With this cache every step must run through the "intfa" attention implementation,
and what a paged decode cannot express is an error rather than an SDPA fallback (the fp16 keys
are gone): a padding or custom attention mask after the prefill, beam search, cropping,
offloading, more than 16 query heads per KV head, head dims other than 64 and 128. A later
forward of several tokens (a speculative step, or the next chunk of a prompt fed in pieces)
attends to the pages like a decode step. It needs transformers (and torch); the rest of this module does not.
"""

# Written against transformers 5.23.0 (the newest release, read from its wheel) and checked
# against 5.17.0 (the release the H200 runs use); both behave the same for what this relies on:
# - cache_utils.Cache(layers=[...]) routes update, get_seq_length, get_mask_sizes(query_length,
#   layer_idx), get_query_offset, get_max_length, reset, crop, reorder_cache and the batch_*
#   methods to per-layer CacheLayerMixin objects, and derives is_compileable, is_sliding,
#   is_linear, is_croppable and batch_size from the layers' attributes.
# - models/llama/modeling_llama.py, LlamaAttention.forward: RoPE, then
#   past_key_values.update(key_states, value_states, self.layer_idx) with [B, Hkv, T, D]
#   tensors, then the attention interface on the tensors update returned, in the same call.
#   The cache itself is not among the attention function's arguments.
# - masking_utils.create_causal_mask sizes the mask with the cache's get_query_offset and
#   get_mask_sizes and, for an implementation registered with sdpa_mask, leaves it out (None)
#   when causality alone describes it: a prompt on an empty cache, or one new token without
#   padding.
# - generation/utils.py, _prepare_cache_for_generation: a user's Cache is used as given (no
#   type check beyond not being a tuple); generate drops an all-ones attention mask, and
#   compiles the forward only for a cache whose is_compileable is True.

import numbers
import threading
import warnings

import intfa

NAME = "intfa"
_warned = set()

# What intfa.decode's kernels take (see its docstring): head dims 64 and 128, and up to 16 query
# heads per KV head (any number of new tokens).
_DECODE_HEAD_DIMS = (64, 128)
_DECODE_MAX_GROUP = 16


def _fallback(reason, module, query, key, value, attention_mask, **kwargs):
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"intfa attention falls back to SDPA: {reason}", stacklevel=3)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                      method="int8", **kwargs):
    """The transformers attention interface: query [B, H, Nq, D], key and value [B, Hkv, Nk, D];
    returns ([B, Nq, H, D], None). A decode step of an Int8PagedCache (key and value are then
    only the new tokens, already in the cache) attends to the cache with intfa.decode."""
    step = _take_decode_step(module, key)
    if step is not None:
        return _paged_decode(step, module, query, attention_mask, dropout, scaling)
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


# --- The paged INT8 cache -------------------------------------------------------------------

# The hand-over from a cache layer's update to the attention function of the same layer call.
# transformers passes the attention function the module and the tensors update returned, not
# the cache, so a decode step leaves (layer, layer index, the key tensor it returned) here, per
# thread, and the attention function claims it by the key tensor's identity.
_handover = threading.local()


class _DecodeStep:
    __slots__ = ("layer", "layer_idx", "key")

    def __init__(self, layer, layer_idx, key):
        self.layer, self.layer_idx, self.key = layer, layer_idx, key


def _pending():
    return getattr(_handover, "step", None)


def _set_pending(step):
    _handover.step = step


def _take_decode_step(module, key):
    """The decode step that the update just before this attention call left, if any (cleared
    either way). A step left for this layer whose key tensor is not the one attention received
    means the model changed the keys between update and attention: decoding would then use the
    cache for keys it never saw, so that is an error. A step left for another layer is stale (a
    forward that stopped between the two) and is dropped; the next update reports it."""
    step = _pending()
    if step is None:
        return None
    _set_pending(None)
    if step.key is key:
        return step
    if getattr(module, "layer_idx", None) == step.layer_idx:
        raise RuntimeError(
            f"layer {step.layer_idx}'s attention received other keys than Int8PagedCache.update returned; "
            "the paged decode needs the model to pass the updated keys to the attention function unchanged")
    return None


def _plain_causal(mask, query_length, key_length):
    """Whether a 4D mask ([B, 1 or H, Nq, Nk], bool where True attends, or additive where 0
    attends) lets query i see exactly the keys j <= Nk - Nq + i: what intfa.decode's causal
    alignment computes. Reads the mask on the host (one synchronization, on this rare path)."""
    import torch
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[-2:] != (query_length, key_length):
        return False
    visible = mask if mask.dtype == torch.bool else mask == 0
    rows = torch.arange(query_length, device=mask.device)[:, None]
    columns = torch.arange(key_length, device=mask.device)[None, :]
    expected = columns <= rows + (key_length - query_length)
    return bool((visible == expected).all())


def _paged_decode(step, module, query, attention_mask, dropout, scaling):
    layer = step.layer
    cache = layer.cache
    query_length = query.shape[2]
    if attention_mask is not None and not _plain_causal(attention_mask, query_length, layer.get_seq_length()):
        raise ValueError(
            "Int8PagedCache decodes every cached token of every sequence: a padding or custom attention mask is not "
            "supported after the prefill, and there is no SDPA fallback (the cache keeps no fp16 keys). Run batches "
            "without padding, or use a DynamicCache.")
    if dropout and module.training:
        raise ValueError("Int8PagedCache's decode has no attention dropout; put the model in eval mode")
    try:
        out = intfa.decode(query, cache, is_causal=True, scale=scaling, layout="bhnd")
    except intfa.UnsupportedError as error:
        raise intfa.UnsupportedError(
            f"{error} (Int8PagedCache keeps no fp16 keys, so there is no SDPA fallback)") from error
    return out.transpose(1, 2), None


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return int(value)


def _attention_geometry(config):
    """(layers, heads, kv_heads, head_dim) of a model config, after checking that every layer
    is full attention (a sliding-window, chunked or linear layer needs a cache this is not)."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        if getattr(config, "sliding_window", None) is not None:
            layer_types = ["sliding_attention"]
        elif getattr(config, "attention_chunk_size", None) is not None:
            layer_types = ["chunked_attention"]
        else:
            layer_types = ["full_attention"]
    others = sorted(set(layer_types) - {"full_attention"})
    if others:
        raise ValueError(f"Int8PagedCache serves full-attention layers only; this model also has {others}")
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if heads % kv_heads:
        raise ValueError(f"{heads} attention heads are not a multiple of {kv_heads} KV heads")
    if head_dim not in _DECODE_HEAD_DIMS:
        raise intfa.UnsupportedError(f"intfa.decode has kernels for head dims {list(_DECODE_HEAD_DIMS)}, not {head_dim}")
    if heads // kv_heads > _DECODE_MAX_GROUP:
        raise intfa.UnsupportedError(f"intfa.decode takes up to {_DECODE_MAX_GROUP} query heads per KV head, not "
                                     f"{heads // kv_heads}")
    return layers, heads, kv_heads, head_dim


def _define_cache_classes():
    """Int8PagedCache, a transformers Cache: defined on first use, as subclassing needs
    transformers, which this module does not import otherwise."""
    from transformers.cache_utils import Cache, CacheLayerMixin

    class Int8PagedLayer(CacheLayerMixin):
        """One layer of an Int8PagedCache: an intfa.KVCache created at the first update (on
        the keys' device unless the cache was given one) and the decode hand-over."""

        is_compileable = False  # host-side page bookkeeping and the hand-over run per step
        is_sliding = False
        is_croppable = False    # nothing appended can be taken back out of the pages

        def __init__(self, layer_idx, batch_size, kv_heads, head_dim, group, max_length, page_size, device):
            super().__init__()
            self.layer_idx, self.batch_size, self.kv_heads, self.head_dim = layer_idx, batch_size, kv_heads, head_dim
            self.group, self.max_length, self.page_size, self._device = group, max_length, page_size, device
            self.cache = None

        def __repr__(self):
            return f"{type(self).__name__}(tokens={self.get_seq_length()})"

        def lazy_initialization(self, key_states, value_states=None):
            device = self._device if self._device is not None else key_states.device
            self.cache = intfa.KVCache(self.batch_size, self.kv_heads, self.head_dim, self.max_length,
                                       page_size=self.page_size, device=device)
            self.dtype, self.device = key_states.dtype, self.cache.device
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            """Appends [B, Hkv, T, D] keys and values and returns them. The first update (the
            cache empty: the prompt) leaves attention to the prefill path on these fp16 tensors;
            a later one leaves a decode step for the attention function, which then attends to
            the pages instead."""
            if _pending() is not None:
                stale = _pending()
                _set_pending(None)
                raise RuntimeError(
                    f"Int8PagedCache's decode step for layer {stale.layer_idx} was not attended by intfa's attention "
                    "function: load or configure the model with the attention implementation registered by "
                    "intfa.integrations.transformers.register() (\"intfa\"), and restart from a fresh cache after an "
                    "interrupted forward")
            batch, kv_heads, tokens, head_dim = key_states.shape
            if (batch, kv_heads, head_dim) != (self.batch_size, self.kv_heads, self.head_dim):
                raise ValueError(f"layer {self.layer_idx} received keys of shape {tuple(key_states.shape)}; the cache "
                                 f"holds {self.batch_size} sequences of {self.kv_heads} KV heads of dim {self.head_dim} "
                                 "([B, Hkv, T, D])")
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if tokens == 0:
                return key_states, value_states
            prefill = self.get_seq_length() == 0
            self.cache.append(key_states, value_states, layout="bhnd")
            if not prefill:
                _set_pending(_DecodeStep(self, self.layer_idx, key_states))
            return key_states, value_states

        def get_seq_length(self):
            """Tokens stored (the host's count; every sequence grows together)."""
            return self.cache.sequence_lengths()[0] if self.cache is not None else 0

        def get_mask_sizes(self, query_length):
            """(kv_length, kv_offset): the stored tokens and the new ones, from position 0. Older
            transformers releases pass cache_position instead of its length."""
            if not isinstance(query_length, int):
                query_length = query_length.shape[0]
            return self.get_seq_length() + query_length, 0

        def get_max_length(self):
            return self.max_length

        def get_max_cache_shape(self):
            return self.max_length

        def reset(self):
            """Frees the pages; the next update starts a new prompt."""
            self.cache = None
            self.is_initialized = False

        def crop(self, tokens_to_remove):
            if tokens_to_remove != 0:
                raise NotImplementedError("Int8PagedCache cannot crop: its pages keep every appended token")

        def _unsupported(self, *args, **kwargs):
            raise NotImplementedError("Int8PagedCache holds a fixed batch of sequences that grow together: beam search, "
                                      "batch reordering and offloading are not supported")

        reorder_cache = batch_repeat_interleave = batch_select_indices = offload = prefetch = _unsupported

    class Int8PagedCache(Cache):
        """A transformers Cache whose layers are paged INT8 KV caches (intfa.KVCache): decode
        steps attend to them with intfa.decode through the "intfa" attention implementation.

        ``config`` is the model's config (layers, attention heads, KV heads, head dim);
        ``batch_size`` the sequences of every forward (a fixed batch; all grow together, without
        padding); ``max_length`` the most tokens a sequence may reach, prompt included (an append
        past it raises). Each layer's pages are allocated at its first update, on the keys'
        device unless ``device`` is given: ``bytes_per_token`` x ``batch_size`` x
        ``max_length`` (rounded up to pages of ``page_size`` tokens), ``bytes_per_token`` being
        ``layers * kv_heads * (2 * head_dim + 8)``."""

        def __init__(self, config, batch_size, max_length, *, page_size=64, device=None):
            layers, heads, kv_heads, head_dim = _attention_geometry(config)
            batch_size = _check_positive_int(batch_size, "batch_size")
            max_length = _check_positive_int(max_length, "max_length")
            page_size = _check_positive_int(page_size, "page_size")
            group = heads // kv_heads
            super().__init__(layers=[
                Int8PagedLayer(index, batch_size, kv_heads, head_dim, group, max_length, page_size, device)
                for index in range(layers)])
            self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim

        def __repr__(self):
            return f"{type(self).__name__}(layers={len(self.layers)}, tokens={self.get_seq_length()})"

        @property
        def bytes_per_token(self):
            """Device bytes one token of one sequence takes over all layers (codes and scales)."""
            return len(self.layers) * self.kv_heads * (2 * self.head_dim + 8)

        @property
        def is_compileable(self):
            return False

        def get_seq_length(self, layer_idx=0):
            """Tokens stored in layer ``layer_idx`` (the host's count, no synchronization)."""
            if layer_idx >= len(self.layers):
                return 0
            return self.layers[layer_idx].get_seq_length()

        def get_max_length(self, layer_idx=None):
            return self.layers[0].max_length

        def get_max_cache_shape(self, layer_idx=0):
            return self.layers[0].max_length

        def reset(self):
            """Frees every layer's pages; the next forward is a new prompt."""
            _set_pending(None)
            super().reset()

    return Int8PagedCache


_classes = {}


def __getattr__(name):
    if name != "Int8PagedCache":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _classes:
        try:
            _classes[name] = _define_cache_classes()
        except ImportError as error:
            raise ImportError(f"intfa.integrations.transformers.Int8PagedCache needs transformers: {error}") from error
    return _classes[name]
