"""The Python package on the GPU (torch CUDA tensors): against SDPA on float32 copies of the
inputs, on other streams, inside a CUDA graph, on views, GQA and causal. Skipped without CUDA."""
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.nn.functional as F

import intfa

TOLERANCE = {"int8": 0.03, "int8-paper": 0.05, "fp16": 3e-3}


def reference(q, k, v, causal=False, scale=None):
    """SDPA in float32, GQA by repetition, bottom-right causal mask."""
    q, k, v = (x.float() for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    mask = None
    if causal:
        nq, nk = q.shape[2], k.shape[2]
        mask = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril(diagonal=nk - nq)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def rel_l1(a, b):
    return ((a.float() - b).abs().sum() / b.abs().sum()).item()


def inputs(b=2, h=4, hkv=None, nq=256, nk=None, d=128, dtype=torch.float16, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    hkv, nk = hkv or h, nk or nq
    make = lambda *shape: torch.randn(*shape, device="cuda", dtype=dtype, generator=g)
    return make(b, h, nq, d), make(b, hkv, nk, d), make(b, hkv, nk, d)


@pytest.mark.parametrize("method", list(TOLERANCE))
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_sdpa(method, d, causal):
    q, k, v = inputs(d=d, seed=d + causal)
    out = intfa.attention(q, k, v, is_causal=causal, method=method)
    assert out.shape == q.shape and out.dtype == q.dtype and out.is_cuda
    assert rel_l1(out, reference(q, k, v, causal)) < TOLERANCE[method]


@pytest.mark.parametrize("nq,nk", [(1, 1), (63, 65), (200, 65), (65, 1000), (1000, 1000)])
def test_gqa_unequal_lengths_bf16(nq, nk):
    q, k, v = inputs(h=8, hkv=2, nq=nq, nk=nk, dtype=torch.bfloat16, seed=nq * 7 + nk)
    for causal in (False, True):
        out = intfa.attention(q, k, v, is_causal=causal, scale=0.1)
        ref = reference(q, k, v, causal, scale=0.1)
        visible = ~torch.isnan(ref[..., 0])  # rows that see no key: SDPA gives NaN, intfa 0
        assert out.dtype == torch.bfloat16
        assert rel_l1(out[visible], ref[visible]) < TOLERANCE["int8"]
        assert torch.all(out[~visible] == 0)


@pytest.mark.parametrize("method,tolerance", [("fp16", 1e-2), ("int8", 0.05), ("int8-paper", 0.1)])
def test_log_sum_exp(method, tolerance):
    q, k, v = inputs(h=8, hkv=2, nq=300, nk=500)
    k = k + 2  # a channel mean that int8's smoothing takes out and the log-sum-exp keeps
    _, lse = intfa.attention(q, k, v, method=method, return_lse=True)
    s = torch.einsum("bhnd,bhmd->bhnm", q.float(), k.float().repeat_interleave(4, 1)) / q.shape[-1] ** 0.5
    assert (lse - torch.logsumexp(s, -1)).abs().max().item() < tolerance


def test_views_and_bnhd():
    q, k, v = inputs(nq=512)
    ref = reference(q, k, v)
    views = [x[:, :, ::2] for x in (q, k, v)]  # every other token: strides, no copy
    assert rel_l1(intfa.attention(*views), reference(*views)) < TOLERANCE["int8"]
    bnhd = [x.transpose(1, 2) for x in (q, k, v)]  # a non-contiguous BNHD view
    out = intfa.attention(*bnhd, layout="bnhd")
    assert out.shape == bnhd[0].shape
    assert rel_l1(out.transpose(1, 2), ref) < TOLERANCE["int8"]


def test_other_stream_and_ordering():
    q, k, v = inputs(nq=1024)
    expected = intfa.attention(q, k, v)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        doubled = q * 2  # queued on the side stream, just before the attention that reads it
        out = intfa.attention(doubled / 2, k, v)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(out, expected)


def test_cuda_graph_capture():
    q, k, v = inputs(nq=512)
    static = [x.clone() for x in (q, k, v)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        intfa.attention(*static)  # compile and load outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = intfa.attention(*static)
    fresh = inputs(nq=512, seed=99)
    for target, source in zip(static, fresh):
        target.copy_(source)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, intfa.attention(*fresh))


def test_quantized_entry_point():
    q, k, v = inputs(nq=384, nk=640)
    quantized = intfa.quantize(q, k, v)
    for causal in (False, True):
        direct = intfa.attention(q, k, v, is_causal=causal)
        assert torch.equal(intfa.attention_quantized(quantized, is_causal=causal), direct)
        # Every tile computes the same under either grid.
        for grid in ("persistent", "tiles"):
            assert torch.equal(intfa.attention_quantized(quantized, is_causal=causal, grid=grid), direct)


def test_errors():
    q, k, v = inputs(nq=64)
    with pytest.raises(ValueError, match="CPU"):
        intfa.attention(q, k.cpu(), v)
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        intfa.attention(q.float(), k.float(), v.float())
    with pytest.raises(intfa.UnsupportedError):
        intfa.attention(*inputs(nq=64, d=40))  # no GPU kernel for this head dim
    with pytest.raises(ValueError, match="contiguous"):
        intfa.attention(q.transpose(2, 3).contiguous().transpose(2, 3), k, v)
    bad = q.clone()
    bad[0, 0, 3, 5] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        intfa.attention(bad, k, v, validate=True)


def test_torch_compile_traces_through_the_custom_ops():
    """intfa.attention and merge_partial are torch.library ops while traced: a whole graph
    with no break, the compiled result equal to the eager one, and fake tensors getting the
    right shapes without a kernel running."""
    q, k, v = inputs(b=1, h=4, hkv=2, nq=96, nk=200, d=64)

    def step(q, k, v):
        out, lse = intfa.attention(q, k, v, is_causal=True, return_lse=True)
        acc = torch.zeros(out.shape, device=out.device, dtype=torch.float32)
        acc_lse = torch.full(lse.shape, float("-inf"), device=out.device)
        intfa.merge_partial(acc, acc_lse, out, lse)
        return acc * 2, acc_lse

    eager_out, eager_lse = intfa.attention(q, k, v, is_causal=True, return_lse=True)
    out, lse = torch.compile(step, fullgraph=True)(q, k, v)
    assert torch.allclose(out, eager_out.float() * 2) and torch.equal(lse, eager_lse)

    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        fq, fk, fv = (mode.from_tensor(x) for x in (q, k, v))
        fake_out, fake_lse = intfa.attention(fq, fk, fv, layout="bhnd", return_lse=True)
        assert fake_out.shape == q.shape and fake_out.dtype == q.dtype and fake_lse.shape == (1, 4, 96)
        bnhd = intfa.attention(*(x.transpose(1, 2) for x in (fq, fk, fv)), layout="bnhd")
        assert bnhd.shape == (1, 96, 4, 64)


@pytest.mark.parametrize("method", ["int8", "fp16"])
def test_custom_ops_pass_opcheck(method):
    q, k, v = inputs(b=1, h=2, nq=64, d=64)
    ops = intfa._ops()
    torch.library.opcheck(ops.attention.default, (q, k, v, False, None, method, "bhnd", True, False))
    torch.library.opcheck(ops.attention.default, (q, k, v, True, 0.2, method, "bhnd", False, False))
    out, lse = intfa.attention(q, k, v, method=method, return_lse=True)
    acc = torch.zeros(out.shape, device="cuda")
    acc_lse = torch.full(lse.shape, float("-inf"), device="cuda")
    torch.library.opcheck(ops.merge_partial.default, (acc, acc_lse, out, lse))


def test_custom_ops_when_intfa_is_imported_before_torch():
    """Imported before torch, intfa registers its ops at its first eager call; a compile
    before that says how to avoid it instead of failing inside the tracer."""
    import subprocess
    import sys
    script = """
import intfa, torch
q = torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.float16)
attend = torch.compile(lambda q: intfa.attention(q, q, q), fullgraph=True)
try:
    attend(q)
    raise SystemExit("compiled before registration")
except Exception as error:
    assert "import torch before intfa" in str(error), error
torch._dynamo.reset()
eager = intfa.attention(q, q, q)
assert torch.equal(attend(q), eager)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_quantized_entry_points_compile_and_pass_opcheck():
    q, k, v = inputs(b=1, h=4, hkv=2, nq=80, nk=130, d=64)

    def step(q, k, v):
        quantized = intfa.quantize(q, k, v)
        return intfa.attention_quantized(quantized, is_causal=True, dtype=torch.bfloat16, return_lse=True)

    eager_out, eager_lse = step(q, k, v)
    out, lse = torch.compile(step, fullgraph=True)(q, k, v)
    assert torch.equal(out, eager_out) and torch.equal(lse, eager_lse)

    ops = intfa._ops()
    # Not test_aot_dispatch_dynamic: k_scale ends in int32 marks whose "none" (0x7FFFFFFF)
    # reads as a float NaN, which its comparison counts as a difference.
    torch.library.opcheck(ops.quantize.default, (q, k, v, "int8", None, "bhnd", None, None),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    again = intfa.quantize(q[:, :, :77], k, v)  # 4·77 query rows: padded row marks
    first = intfa.quantize(q[:, :, :77], k, v)
    for name in ("q", "q_scale", "k", "k_scale", "vt", "v_scale"):
        assert torch.equal(getattr(first, name).view(torch.uint8), getattr(again, name).view(torch.uint8)), name
    quantized = intfa.quantize(q, k, v, method="int8-paper")
    buffers = (quantized.q, quantized.q_scale, quantized.k, quantized.k_scale, quantized.vt, quantized.v_scale)
    torch.library.opcheck(ops.attention_quantized.default,
                          (*buffers, "int8-paper", [1, 4, 2, 80, 130, 64], None, False, torch.float16, "bnhd", True, None))
