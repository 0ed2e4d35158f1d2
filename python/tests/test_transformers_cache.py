"""intfa.integrations.transformers.Int8PagedCache on the GPU: a randomly initialised Llama
decoding 512 teacher-forced steps from the paged INT8 cache against fp16 SDPA on a
DynamicCache, generate() with the cache, and what the cache refuses. Skipped without CUDA or
transformers."""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
pytest.importorskip("transformers")

import torch.nn.functional as F
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

import intfa
import intfa.integrations.transformers as intfa_transformers
from intfa.integrations.transformers import Int8PagedCache

NAME = intfa_transformers.register()
# The target for the per-step cosine similarity of the final logits.
MIN_COSINE = 0.9995


def llama(head_dim, seed=0):
    """A small Llama (4 layers, 8 heads on 2 KV heads: 4 query rows per KV head and token) in
    fp16 on the GPU, random weights: no downloads."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=head_dim,
                         max_position_embeddings=4096)
    return LlamaForCausalLM(config).to(device="cuda", dtype=torch.float16).eval()


def random_tokens(shape, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randint(0, 1000, shape, device="cuda", generator=g)


def teacher_forced(model, implementation, cache, prompt, tokens):
    """Final logits (float32) [B, steps, V] of feeding `tokens` one at a time after `prompt`."""
    model.set_attn_implementation(implementation)
    logits = []
    with torch.no_grad():
        model(input_ids=prompt, past_key_values=cache, use_cache=True)
        for t in range(tokens.shape[1]):
            out = model(input_ids=tokens[:, t:t + 1], past_key_values=cache, use_cache=True)
            logits.append(out.logits[:, -1].float())
    return torch.stack(logits, 1)


@pytest.mark.parametrize("head_dim", [64, 128])
def test_teacher_forced_decode_matches_fp16_dynamic_cache(head_dim, monkeypatch):
    batch, prompt_length, steps = 2, 64, 512
    model = llama(head_dim)
    prompt = random_tokens((batch, prompt_length), seed=1)
    tokens = random_tokens((batch, steps), seed=2)
    decodes = []
    decode = intfa.decode

    def counted(*args, **kwargs):
        decodes.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(intfa, "decode", counted)
    cache = Int8PagedCache(model.config, batch, prompt_length + steps)
    paged = teacher_forced(model, NAME, cache, prompt, tokens)
    # Every decode step of every layer attended to the pages.
    assert len(decodes) == steps * model.config.num_hidden_layers
    assert cache.get_seq_length() == prompt_length + steps
    reference = teacher_forced(model, "sdpa", DynamicCache(config=model.config), prompt, tokens)

    cosine = F.cosine_similarity(paged, reference, dim=-1)  # [B, steps]
    top1 = (paged.argmax(-1) == reference.argmax(-1)).float().mean().item()
    report = (f"head_dim {head_dim}, {steps} steps x {batch} sequences: logits cosine min {cosine.min().item():.6f}, "
              f"mean {cosine.mean().item():.6f}; top-1 agreement {top1:.4f}")
    print(report)
    assert torch.isfinite(paged).all()
    assert cosine.min().item() >= MIN_COSINE, report


@pytest.mark.parametrize("head_dim", [64, 128])
def test_a_prompt_fed_in_chunks_attends_to_the_pages(head_dim):
    """Chunked prefill: after a first chunk, the next ones (5 and 23 tokens: 20 and 92 query rows
    per KV head, several query tiles) decode from the pages. Their logits against one fp16 SDPA
    forward over the whole prompt."""
    model = llama(head_dim)
    prompt = random_tokens((2, 92), seed=6)
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        reference = model(input_ids=prompt).logits.float()
    model.set_attn_implementation(NAME)
    cache = Int8PagedCache(model.config, 2, 128)
    pieces = []
    with torch.no_grad():
        for first, last in [(0, 64), (64, 69), (69, 92)]:
            pieces.append(model(input_ids=prompt[:, first:last], past_key_values=cache, use_cache=True).logits.float())
    assert cache.get_seq_length() == 92
    chunked = torch.cat(pieces, 1)
    assert torch.isfinite(chunked).all()
    cosine = F.cosine_similarity(chunked[:, 64:], reference[:, 64:], dim=-1)
    assert cosine.min().item() >= MIN_COSINE, cosine.min().item()


def test_generate_with_int8_paged_cache():
    model = llama(128)
    model.set_attn_implementation(NAME)
    prompt = random_tokens((2, 32), seed=3)
    cache = Int8PagedCache(model.config, batch_size=2, max_length=64)
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False, past_key_values=cache)
        # The prompt runs intfa's prefill attention on its fp16 keys either way: the first token is the one a
        # DynamicCache gives.
        first = model.generate(prompt, max_new_tokens=1, do_sample=False)
    assert out.shape == (2, 48)
    assert torch.equal(out[:, :32], prompt)
    assert torch.equal(out[:, 32], first[:, 32])
    assert cache.get_seq_length() == 47  # the last generated token is not fed back
    assert cache.get_max_length() == 64 and not cache.is_compileable
    cache.reset()
    assert cache.get_seq_length() == 0
    with torch.no_grad():
        again = model.generate(prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False, past_key_values=cache)
    assert torch.equal(again, out)


def test_sizes_and_memory():
    model = llama(64)
    model.set_attn_implementation(NAME)
    cache = Int8PagedCache(model.config, 2, 100, page_size=16)
    assert len(cache) == 4 and cache.get_seq_length() == 0 and cache.get_mask_sizes(10, 0) == (10, 0)
    assert cache.bytes_per_token == 4 * 2 * (2 * 64 + 8)
    with torch.no_grad():
        model(input_ids=random_tokens((2, 40), seed=4), past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == 40 and cache.get_mask_sizes(1, 3) == (41, 0)
    pages = cache.layers[0].cache
    assert pages.key_codes.dtype == torch.int8 and pages.sequence_lengths() == [40, 40]
    assert pages.bytes_per_token * model.config.num_hidden_layers == cache.bytes_per_token


def test_what_the_cache_refuses():
    model = llama(64)
    model.set_attn_implementation(NAME)
    cache = Int8PagedCache(model.config, 2, 80)
    tokens = random_tokens((2, 80), seed=5)
    with torch.no_grad():
        model(input_ids=tokens[:, :64], past_key_values=cache, use_cache=True)
        model(input_ids=tokens[:, 64:68], past_key_values=cache, use_cache=True)
        assert cache.get_seq_length() == 68
        padded = torch.ones(2, 69, dtype=torch.long, device="cuda")
        padded[1, :3] = 0
        with pytest.raises(ValueError, match="padding"):
            model(input_ids=tokens[:, 68:69], attention_mask=padded, past_key_values=cache, use_cache=True)
        with pytest.raises(ValueError, match="max_length"):
            model(input_ids=tokens[:, :72], past_key_values=Int8PagedCache(model.config, 2, 70), use_cache=True)

        # Decode steps must go through intfa's attention function: with SDPA the next layer's update refuses.
        model.set_attn_implementation("sdpa")
        other = Int8PagedCache(model.config, 2, 80)
        model(input_ids=tokens[:, :64], past_key_values=other, use_cache=True)
        with pytest.raises(RuntimeError, match="intfa"):
            model(input_ids=tokens[:, 64:65], past_key_values=other, use_cache=True)

    with pytest.raises(intfa.UnsupportedError, match="head dims"):
        Int8PagedCache(LlamaConfig(hidden_size=384, num_attention_heads=4, num_hidden_layers=2), 1, 16)
