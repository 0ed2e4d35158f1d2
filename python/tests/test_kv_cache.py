"""intfa.KVCache and intfa.decode on the GPU: against float32 attention on the same tokens,
against the prefill int8 scheme's error, under torch.compile and in a CUDA graph, with the
errors a caller can make. Skipped without CUDA."""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.nn.functional as F

import intfa


def rel_l1(a, b):
    return ((a.float() - b).abs().sum() / b.abs().sum()).item()


def tokens(b, n, hkv, d, seed, dtype=torch.float16):
    """K (with an outlier channel) and V [B, N, Hkv, D]."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    k = torch.randn(b, n, hkv, d, device="cuda", generator=g)
    k[..., 3] += 4
    v = torch.randn(b, n, hkv, d, device="cuda", generator=g)
    return k.to(dtype), v.to(dtype)


def reference(q, k, v, causal):
    """float32 SDPA of q [B, Nq, H, D] on k, v [B, N, Hkv, D], bottom-right causal."""
    q, k, v = (x.float().transpose(1, 2) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    nq, nk = q.shape[2], k.shape[2]
    mask = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril(diagonal=nk - nq) if causal else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)


@pytest.mark.parametrize("d,page_size,dtype", [(128, 64, torch.float16), (64, 16, torch.bfloat16), (128, 7, torch.float16)])
def test_decode_matches_attention_on_the_same_tokens(d, page_size, dtype):
    lengths, h, hkv, nq = [1000, 33, 4097], 8, 2, 2
    cache = intfa.KVCache(len(lengths), hkv, d, 5000, page_size=page_size)
    full = [tokens(1, n, hkv, d, seed=n + d, dtype=dtype) for n in lengths]
    # Prefills of different lengths one sequence at a time, then the last Nq tokens of all at once.
    for s, (k, v) in enumerate(full):
        cache.append(k[:, :-nq], v[:, :-nq], sequences=range(s, s + 1))
    cache.append(torch.cat([k[:, -nq:] for k, _ in full]), torch.cat([v[:, -nq:] for _, v in full]))
    assert cache.sequence_lengths() == lengths
    assert cache.lengths.tolist() == lengths
    q = torch.randn(len(lengths), nq, h, d, device="cuda").to(dtype)
    out, lse = intfa.decode(q, cache, return_lse=True)
    assert out.shape == q.shape and out.dtype == dtype and lse.shape == (len(lengths), h, nq)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    for s, (k, v) in enumerate(full):
        ref = reference(q[s:s + 1], k, v, causal=True)
        error = rel_l1(out[s:s + 1], ref)
        # The prefill int8 scheme on the same tokens: decode stays within its error (the issue's ±20%, with room
        # for the draw).
        prefill = intfa.attention(q[s:s + 1], k, v, is_causal=True, layout="bnhd")
        assert error < 1.3 * rel_l1(prefill, ref) + 1e-3, (s, error, rel_l1(prefill, ref))
        assert error < 0.03


@pytest.mark.parametrize("d,page_size,group", [(128, 64, 4), (64, 16, 16), (128, 48, 1)])
def test_a_chunk_of_a_prompt_decodes_in_query_tiles(d, page_size, group):
    """Chunked prefill: the second chunk of a prompt (37 tokens: several query tiles of
    16 / group tokens) attends causally to the pages, as the prefill attention does on the whole
    sequence's last 37 rows."""
    hkv, nq, lengths = 2, 37, [300, 37]
    h = hkv * group
    cache = intfa.KVCache(len(lengths), hkv, d, 512, page_size=page_size)
    full = [tokens(1, n, hkv, d, seed=n + group) for n in lengths]
    for s, (k, v) in enumerate(full):
        cache.append(k[:, :-nq], v[:, :-nq], sequences=range(s, s + 1))
    cache.append(torch.cat([k[:, -nq:] for k, _ in full]), torch.cat([v[:, -nq:] for _, v in full]))
    q = torch.randn(len(lengths), nq, h, d, device="cuda", dtype=torch.float16)
    out = intfa.decode(q, cache)
    assert torch.isfinite(out).all()
    for s, (k, v) in enumerate(full):
        ref = reference(q[s:s + 1], k, v, causal=True)
        prefill = intfa.attention(q[s:s + 1], k, v, is_causal=True, layout="bnhd")
        error = rel_l1(out[s:s + 1], ref)
        assert error < 1.3 * rel_l1(prefill, ref) + 1e-3, (s, error, rel_l1(prefill, ref))


def test_layouts_views_and_non_causal():
    b, h, hkv, d, n = 2, 4, 4, 64, 300
    cache = intfa.KVCache(b, hkv, d, 512, page_size=32)
    k, v = tokens(b, n, hkv, d, seed=5)
    cache.append(k.transpose(1, 2), v.transpose(1, 2), layout="bhnd")  # [B, Hkv, T, D] views
    q = torch.randn(b, h, 3, d, device="cuda", dtype=torch.float16)
    out = intfa.decode(q, cache, is_causal=False, layout="bhnd")
    ref = reference(q.transpose(1, 2), k, v, causal=False).transpose(1, 2)
    assert rel_l1(out, ref) < 0.03


def test_nan_token_poisons_only_its_sequence():
    cache = intfa.KVCache(2, 1, 128, 256)
    k, v = tokens(2, 100, 1, 128, seed=9)
    k[1, 50, 0, 7] = float("nan")
    cache.append(k, v)
    out = intfa.decode(torch.randn(2, 1, 4, 128, device="cuda", dtype=torch.float16), cache)
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1]).all()


def test_decode_compiles_without_graph_breaks_and_in_a_cuda_graph():
    cache = intfa.KVCache(2, 2, 128, 2048)
    k, v = tokens(2, 1500, 2, 128, seed=3)
    cache.append(k, v)
    q = torch.randn(2, 1, 8, 128, device="cuda", dtype=torch.float16)
    eager = intfa.decode(q, cache)
    compiled = torch.compile(lambda x: intfa.decode(x, cache), fullgraph=True)
    assert torch.equal(compiled(q), eager)
    static_q = q.clone()
    intfa.decode(static_q, cache)  # warm-up: compile the kernels outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = intfa.decode(static_q, cache)
    static_q.copy_(q * 2)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_out, intfa.decode(q * 2, cache))


def test_custom_ops_pass_opcheck():
    cache = intfa.KVCache(1, 2, 64, 256, page_size=16)
    k, v = tokens(1, 40, 2, 64, seed=1)
    cache.append(k, v)
    q = torch.randn(1, 1, 4, 64, device="cuda", dtype=torch.float16)
    torch.library.opcheck(torch.ops.intfa.decode.default,
                          (q, *cache._tensors(), 40, True, None, "bnhd", True))


def test_errors():
    cache = intfa.KVCache(2, 2, 128, 128, page_size=64, pages=3)
    k, v = tokens(2, 64, 2, 128, seed=2)
    with pytest.raises(ValueError, match="shape"):
        cache.append(k[:, :, :1], v[:, :, :1])
    with pytest.raises(ValueError, match="causal"):
        intfa.decode(torch.randn(2, 1, 4, 128, device="cuda", dtype=torch.float16), cache)
    cache.append(k, v)
    with pytest.raises(MemoryError, match="pages"):
        cache.append(k, v)  # needs 2 more pages, 1 is free
    with pytest.raises(ValueError, match="max_length"):
        cache.append(*tokens(2, 65, 2, 128, seed=4), sequences=range(0, 2))
    with pytest.raises(ValueError, match="sequences"):
        cache.append(k, v, sequences=range(1, 3))
    with pytest.raises(intfa.UnsupportedError):
        intfa.decode(torch.randn(2, 1, 40, 128, device="cuda", dtype=torch.float16), cache, is_causal=False)
    with pytest.raises(TypeError):
        intfa.decode(torch.randn(2, 1, 4, 128), cache)
    with pytest.raises(ValueError, match="page_size"):
        intfa.KVCache(1, 1, 64, 10, page_size=300)
