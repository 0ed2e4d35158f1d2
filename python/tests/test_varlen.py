"""intfa.attention_varlen on the GPU: every sequence of a packed batch as intfa.attention on
that sequence alone (the same kernels, bit for bit; many short causal prompts, which run as
one padded batch, within rounding), under torch.compile, with the caller's errors. Skipped
without CUDA."""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import intfa


def packed(lengths_q, lengths_k, h, hkv, d, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    make = lambda n, heads: torch.randn(n, heads, d, device="cuda", dtype=torch.float16, generator=g)
    offsets = lambda lengths: [0] + torch.tensor(lengths).cumsum(0).tolist()
    return make(sum(lengths_q), h), make(sum(lengths_k), hkv), make(sum(lengths_k), hkv), offsets(lengths_q), offsets(lengths_k)


@pytest.mark.parametrize("method", ["int8", "fp16"])
@pytest.mark.parametrize("lengths_q,lengths_k", [([1, 17, 1000, 4096], [1, 17, 1000, 4096]), ([3, 1, 64], [700, 65, 64]),
                                                 ([256] * 4, [256] * 4)])
def test_each_sequence_as_a_dense_call(method, lengths_q, lengths_k):
    q, k, v, cq, ck = packed(lengths_q, lengths_k, 8, 2, 128, seed=len(lengths_q) + lengths_k[0])
    out = intfa.attention_varlen(q, k, v, torch.tensor(cq, dtype=torch.int32), ck, max(lengths_q), max(lengths_k),
                                 is_causal=True, method=method)
    assert out.shape == q.shape and out.dtype == q.dtype
    for b in range(len(lengths_q)):
        qs, ks, vs = q[cq[b]:cq[b + 1]][None], k[ck[b]:ck[b + 1]][None], v[ck[b]:ck[b + 1]][None]
        dense = intfa.attention(qs, ks, vs, is_causal=True, method=method, layout="bnhd")
        assert torch.equal(out[cq[b]:cq[b + 1]], dense[0]), b


@pytest.mark.parametrize("method", ["int8", "fp16"])
def test_short_prompts_as_one_padded_batch(method):
    # 13 causal prompts of up to 64 tokens (one empty): padded into one dense batch, each
    # sequence's int8 statistics its own. The same codes as alone; the sums may run in
    # another order.
    lengths = [40, 17, 33, 64, 1, 50, 0, 29, 63, 45, 8, 58, 36]
    q, k, v, cq, ck = packed(lengths, lengths, 8, 2, 128, seed=7)
    k[:, :, 3] += 4.0  # an outlier channel: a K mean far from 0
    out = intfa.attention_varlen(q, k, v, cq, ck, is_causal=True, method=method)
    for b, n in enumerate(lengths):
        if n == 0:
            continue
        qs, ks, vs = q[cq[b]:cq[b + 1]][None], k[ck[b]:ck[b + 1]][None], v[ck[b]:ck[b + 1]][None]
        dense = intfa.attention(qs, ks, vs, is_causal=True, method=method, layout="bnhd")[0].float()
        mine = out[cq[b]:cq[b + 1]].float()
        assert ((mine - dense).abs().sum() / dense.abs().sum()).item() < 1e-3, b
    # Nothing is copied from the host on the way (the offsets travel in the kernels'
    # parameters): the call can be captured in a CUDA graph and replayed.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        intfa.attention_varlen(q, k, v, cq, ck, is_causal=True, method=method)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = intfa.attention_varlen(q, k, v, cq, ck, is_causal=True, method=method)
    captured.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, out)


def test_compiles_and_refuses_bad_offsets():
    q, k, v, cq, ck = packed([5, 9], [5, 9], 4, 4, 64, seed=1)
    eager = intfa.attention_varlen(q, k, v, cq, ck)
    compiled = torch.compile(lambda *x: intfa.attention_varlen(*x, cq, ck), fullgraph=True)
    assert torch.equal(compiled(q, k, v), eager)
    with pytest.raises(ValueError, match="ends at"):
        intfa.attention_varlen(q, k, v, [0, 5, 13], ck)
    with pytest.raises(ValueError, match="decrease"):
        intfa.attention_varlen(q, k, v, [0, 9, 5, 14], [0, 9, 5, 14])
    with pytest.raises(ValueError, match="max_seqlen_q"):
        intfa.attention_varlen(q, k, v, cq, ck, max_seqlen_q=4)
