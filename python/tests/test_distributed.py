"""Context parallelism pieces that one GPU can check: the log-sum-exp merge, zigzag sharding,
and a one-rank ring (NCCL) against intfa.attention. The multi-GPU runs are
scripts/ring-attention.sh's. Skipped without CUDA."""
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.distributed as dist

import intfa
from intfa.distributed import merge, ring_attention, zigzag_bounds, zigzag_shard, zigzag_unshard


def randn(*shape, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(*shape, device="cuda", dtype=torch.float16, generator=g)


def test_merge_of_two_key_sets_is_attention_over_both():
    q, k, v = randn(2, 4, 300, 64), randn(2, 4, 700, 64, seed=1), randn(2, 4, 700, 64, seed=2)
    full = intfa.attention(q, k, v, method="fp16")
    out = torch.zeros(2, 4, 300, 64, device="cuda")
    lse = torch.full((2, 4, 300), float("-inf"), device="cuda")
    for a, z in ((0, 250), (250, 700)):
        merge(out, lse, *intfa.attention(q, k[:, :, a:z], v[:, :, a:z], method="fp16", return_lse=True))
    assert ((out - full.float()).abs().max() / full.float().abs().max()).item() < 2e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_merge_kernel_matches_the_formula(dtype):
    b, h, n, d = 2, 3, 200, 128
    g = torch.Generator(device="cuda").manual_seed(5)
    whole = torch.randn(b, h, n + 8, d, device="cuda", generator=g)
    out = whole[:, :, 4:4 + n]  # a view, as the ring's chunks are
    lse = torch.randn(b, h, n + 8, device="cuda", generator=g)[:, :, 4:4 + n]
    part = torch.randn(b, h, n, d, device="cuda", generator=g).to(dtype)
    part_lse = torch.randn(b, h, n, device="cuda", generator=g)
    lse[0, 0, :3] = float("-inf")
    part_lse[0, 0, 1:4] = float("-inf")  # row 1: -inf in both; rows 0, 2 and 3: one side
    # The torch formula, which merge() keeps for parts that are not 16-bit.
    expected, expected_lse = out.clone(), lse.clone()
    merge(expected, expected_lse, part.float(), part_lse)
    finite = torch.isfinite(expected_lse)
    before = whole.clone()
    intfa.merge_partial(out, lse, part, part_lse)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(torch.isfinite(lse), finite) and torch.allclose(lse[finite], expected_lse[finite], rtol=1e-6, atol=1e-6)
    assert torch.equal(whole[:, :, :4], before[:, :, :4]) and torch.equal(whole[:, :, 4 + n:], before[:, :, 4 + n:])
    with pytest.raises(TypeError, match="float32"):
        intfa.merge_partial(out.half(), lse, part, part_lse)
    with pytest.raises(ValueError, match="shape"):
        intfa.merge_partial(out, lse, part[:, :, :10], part_lse)


def test_merge_keeps_rows_without_keys():
    out, lse = torch.zeros(1, 1, 2, 4, device="cuda"), torch.full((1, 1, 2), float("-inf"), device="cuda")
    part = torch.ones(1, 1, 2, 4, device="cuda")
    merge(out, lse, part, torch.tensor([[[0.5, float("-inf")]]], device="cuda"))
    assert torch.equal(out[0, 0, 0], part[0, 0, 0]) and torch.all(out[0, 0, 1] == 0)
    assert lse[0, 0, 0].item() == 0.5 and lse[0, 0, 1].item() == float("-inf")


@pytest.mark.parametrize("n,world", [(100, 1), (1103, 2), (4099, 4), (16, 8), (5003, 3)])
def test_zigzag_round_trip(n, world):
    x = torch.arange(n, device="cuda").view(1, 1, n, 1)
    shards = [zigzag_shard(x, r, world) for r in range(world)]
    assert sum(s.shape[2] for s in shards) == n
    assert torch.equal(zigzag_unshard(shards, n), x)
    bounds = zigzag_bounds(n, world)
    assert all(a % 128 == 0 for a, _ in bounds) and bounds[-1][1] == n
    sizes = [z - a for a, z in bounds]
    assert max(sizes) - min(sizes) <= 128 + n % 128  # whole 128-token tiles, the tail on the last chunk


@pytest.fixture(scope="module")
def one_rank_group():
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    for name, value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
        os.environ[name] = value  # NVLink multicast stays off
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kv_format", ["int8", "fp16"])
def test_one_rank_ring_is_attention(one_rank_group, causal, kv_format):
    q, k, v = randn(1, 8, 1000, 128), randn(1, 2, 1000, 128, seed=3), randn(1, 2, 1000, 128, seed=4)
    ring = ring_attention(q, k, v, is_causal=causal, kv_format=kv_format)
    single = intfa.attention(q, k, v, is_causal=causal)
    # Chunks quantize with the whole sequence's statistics, so only the merge's rounding differs.
    assert ((ring.float() - single.float()).abs().sum() / single.float().abs().sum()).item() < 2e-3


def test_given_statistics_quantize_like_measured_ones():
    q, k, v = randn(2, 8, 700, 128), randn(2, 2, 900, 128, seed=5) + 1, randn(2, 2, 900, 128, seed=6)
    k_mean = torch.sum(k, dim=2, dtype=torch.float64).div(k.shape[2]).float()
    v_amax = v.float().abs().amax(dim=2)
    given = intfa.attention_quantized(intfa.quantize(q, k, v, k_mean=k_mean, v_amax=v_amax))
    measured = intfa.attention_quantized(intfa.quantize(q, k, v))
    assert ((given.float() - measured.float()).abs().sum() / measured.float().abs().sum()).item() < 1e-3
    with pytest.raises(ValueError, match="both"):
        intfa.quantize(q, k, v, k_mean=k_mean)
    with pytest.raises(ValueError, match="float32"):
        intfa.quantize(q, k, v, k_mean=k_mean.half(), v_amax=v_amax)
