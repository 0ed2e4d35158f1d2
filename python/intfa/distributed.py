"""Context parallelism: ring attention over sequence-sharded torch CUDA tensors.

Each rank of a ``torch.distributed`` process group (NCCL, one process per GPU) holds a slice
of the sequence: q [B, H, N_r, D] and k, v [B, Hkv, N_r, D]. K and V travel around the ring
(rank r sends to r + 1 and receives from r - 1 on a side stream) while the rank attends to
the block in hand; the partial outputs merge exactly through their log-sum-exps.

K's channel mean and V's channel amax are reduced over the ranks first, so every shard
quantizes exactly as the whole sequence would on one GPU. With ``kv_format="int8"`` (default)
each rank quantizes its K and V once and the INT8 codes and scales travel, about half the
bytes of fp16 K/V; ``kv_format="fp16"`` sends the fp16 tensors instead (each block is then
quantized where it arrives).

Causal attention uses zigzag sharding so no rank idles: the sequence is cut into 2P chunks on
128-token boundaries and rank r holds chunks r and 2P-1-r (``zigzag_shard`` /
``zigzag_unshard``); the last chunk takes any tail, so N need not divide evenly.

Each block's attention asks for one CTA per tile (``grid="tiles"``): NCCL's kernels share the
SMs with it, and the persistent grid's statically scheduled CTAs that start late behind them
would hold back the whole kernel. Partial results merge in one pass (``intfa.merge_partial``),
and each chunk's first part is copied rather than merged.
"""

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

import intfa


BLOCK = intfa._lib.library().intfa_int8_key_tile()  # the int8 scheme's key tile: its K scale groups and P blocks


def even_bounds(n, parts):
    """Token ranges of `parts` slices of n tokens whose boundaries fall on multiples of 128: the
    key tiles of the int8 scheme, so each slice's K codes and P blocks are the whole sequence's
    (but for its first 32 keys, which form a P block of their own) and results match one GPU's
    within the quantization error. The last slice also takes the n mod 128 tail."""
    blocks = n // BLOCK
    edges = [BLOCK * (blocks * i // parts) for i in range(parts)] + [n]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


def zigzag_bounds(n, world):
    """Token ranges of the 2·world zigzag chunks of a sequence of n tokens (see ``even_bounds``)."""
    return even_bounds(n, 2 * world)


def zigzag_shard(x, rank, world, dim=2):
    """Rank ``rank``'s zigzag shard of x along ``dim``: chunks rank and 2·world-1-rank."""
    bounds = zigzag_bounds(x.shape[dim], world)
    (a0, a1), (b0, b1) = bounds[rank], bounds[2 * world - 1 - rank]
    return torch.cat([x.narrow(dim, a0, a1 - a0), x.narrow(dim, b0, b1 - b0)], dim=dim)


def zigzag_unshard(shards, n, dim=2):
    """The full sequence from every rank's zigzag shard (in rank order)."""
    world = len(shards)
    bounds = zigzag_bounds(n, world)
    pieces = [None] * (2 * world)
    for rank, shard in enumerate(shards):
        first = bounds[rank][1] - bounds[rank][0]
        pieces[rank] = shard.narrow(dim, 0, first)
        pieces[2 * world - 1 - rank] = shard.narrow(dim, first, shard.shape[dim] - first)
    return torch.cat(pieces, dim=dim)


def merge(out, lse, part, part_lse):
    """out, lse (float32 accumulators) <- the attention over both key sets, in place. A row that
    sees no key in one set has log-sum-exp -inf there and takes the other set's result. A 16-bit
    part takes the library's one-pass kernel (intfa.merge_partial); others the torch formula."""
    if part.dtype in (torch.float16, torch.bfloat16) and out.shape[-1] % 4 == 0 and lse.stride(-1) == 1 \
            and part_lse.stride(-1) == 1:
        intfa.merge_partial(out, lse, part, part_lse)
        return
    new = torch.logaddexp(lse, part_lse)
    finite = torch.isfinite(new)
    safe = torch.where(finite, new, torch.zeros_like(new))
    w_old = torch.where(finite, torch.exp(lse - safe), torch.zeros_like(new)).unsqueeze(-1)
    w_new = torch.where(finite, torch.exp(part_lse - safe), torch.zeros_like(new)).unsqueeze(-1)
    out.mul_(w_old).add_(part * w_new)  # the product promotes to float32: no float copy of part
    lse.copy_(new)


@dataclass
class _Block:
    """One chunk of K/V as it travels: INT8 codes and scales, or fp16 K and V."""
    tensors: list
    length: int

    @staticmethod
    def int8(quantized, length):
        """The K/V half of ``intfa.quantize``'s result."""
        return _Block([quantized.k, quantized.k_scale, quantized.vt, quantized.v_scale], length)


class _Ring:
    def __init__(self, group, device):
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        def global_rank(r):
            return dist.get_global_rank(group, r) if group is not None else r
        self.next = global_rank((self.rank + 1) % self.world)
        self.prev = global_rank((self.rank - 1) % self.world)
        self.stream = torch.cuda.Stream(device=device)

    def exchange(self, send, receive):
        """Starts sending `send`'s tensors to the next rank and receiving `receive`'s from the
        previous one, on the side stream; returns a function that makes the current stream wait."""
        if self.world == 1:
            return lambda: None
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            ops = [dist.P2POp(dist.isend, t, self.next, self.group) for t in send]
            ops += [dist.P2POp(dist.irecv, t, self.prev, self.group) for t in receive]
            requests = dist.batch_isend_irecv(ops)

        def wait():
            for request in requests:
                request.wait()
            torch.cuda.current_stream().wait_stream(self.stream)
        return wait


def _global_statistics(k, v, group):
    """K's channel mean and V's channel max |v| over the whole sequence, reduced over the ranks,
    so that every shard quantizes exactly as the whole sequence would on one GPU."""
    k_sum = torch.sum(k, dim=2, dtype=torch.float64)
    tokens = torch.tensor([float(k.shape[2])], dtype=torch.float64, device=k.device)
    v_amax = torch.maximum(v.amax(dim=2).abs(), v.amin(dim=2).abs()).float()
    dist.all_reduce(k_sum, group=group)
    dist.all_reduce(tokens, group=group)
    dist.all_reduce(v_amax, op=dist.ReduceOp.MAX, group=group)
    return (k_sum / tokens).float().contiguous(), v_amax.contiguous()


def _attend_int8(q_codes, block, scale, is_causal, dtype):
    """One (Q chunk, K/V block) pair on INT8 inputs. The log-sum-exp is that of the smoothed
    scores; every block is smoothed with the same (global) mean, so it shifts every part of a
    row alike and the merge stays exact. One CTA per tile: NCCL's kernels hold some SMs while
    the attention starts, and a persistent CTA that starts late behind them holds back every
    tile assigned to it (2.86x against 3.46x on 4 GPUs at N = 128k, docs/PERFORMANCE.md)."""
    k, k_scale, vt, v_scale = block.tensors
    inputs = intfa.QuantizedInputs(
        "int8", q_codes.q, q_codes.q_scale, k, k_scale, vt, v_scale, q_codes.batch, q_codes.heads,
        q_codes.kv_heads, q_codes.query_length, block.length, q_codes.head_dim, scale)
    return intfa.attention_quantized(inputs, is_causal=is_causal, dtype=dtype, return_lse=True, grid="tiles")


def ring_attention(q, k, v, *, group=None, is_causal=False, scale=None, kv_format="int8"):
    """Attention of this rank's queries over the whole sequence's keys. q [B, H, N_r, D] and k, v
    [B, Hkv, N_r, D] (BHND, fp16/bf16 CUDA) are this rank's shard: contiguous slices in rank
    order, or ``zigzag_shard``s when ``is_causal``. Returns this rank's output shard."""
    if kv_format not in ("int8", "fp16"):
        raise ValueError(f"kv_format must be 'int8' or 'fp16', not {kv_format!r}")
    if not (q.is_cuda and k.is_cuda and v.is_cuda):
        raise TypeError("ring_attention takes CUDA tensors")
    ring = _Ring(group, q.device)
    world, rank = ring.world, ring.rank
    b, h, n, d = q.shape

    # The shard's chunks: one, or two (zigzag) when causal.
    lengths = torch.tensor([k.shape[2], q.shape[2]], device=q.device)
    gathered = [torch.empty_like(lengths) for _ in range(world)]
    dist.all_gather(gathered, lengths, group=group)
    kv_lengths = [int(x[0]) for x in gathered]
    if [int(x[1]) for x in gathered] != kv_lengths:
        raise ValueError("each rank's q and k/v shards must hold the same tokens")
    if is_causal:
        total = sum(kv_lengths)
        if total < BLOCK * 2 * world:
            raise ValueError(f"causal ring attention on {world} ranks needs at least {BLOCK * 2 * world} tokens "
                             f"({BLOCK} per zigzag chunk), not {total}")
        bounds = zigzag_bounds(total, world)
        chunk_lengths = [(bounds[r][1] - bounds[r][0], bounds[2 * world - 1 - r][1] - bounds[2 * world - 1 - r][0])
                         for r in range(world)]
        first = chunk_lengths[rank][0]
        splits = [(0, first), (first, n)]
        if [a + z for a, z in chunk_lengths] != kv_lengths:
            raise ValueError("with is_causal the shards must be zigzag_shard()s of the sequence")
    else:
        if min(kv_lengths) < 1:
            raise ValueError(f"every rank needs at least one token (shard lengths {kv_lengths})")
        chunk_lengths = [(length,) for length in kv_lengths]
        splits = [(0, n)]
    q_chunks = [q[:, :, a:z] for a, z in splits]
    k_chunks = [k[:, :, a:z] for a, z in splits]
    v_chunks = [v[:, :, a:z] for a, z in splits]

    k_mean, v_amax = _global_statistics(k, v, group)
    statistics = dict(scale=scale, k_mean=k_mean, v_amax=v_amax)
    # Q codes once per chunk; K/V codes once per chunk (int8 wire) or where each block arrives.
    quantized = [intfa.quantize(qc, kc, vc, **statistics) for qc, kc, vc in zip(q_chunks, k_chunks, v_chunks)]
    if kv_format == "int8":
        blocks = [_Block.int8(x, kc.shape[2]) for x, kc in zip(quantized, k_chunks)]
    else:
        blocks = [_Block([kc.contiguous(), vc.contiguous()], kc.shape[2]) for kc, vc in zip(k_chunks, v_chunks)]

    def attend(qi, block, causal):
        if kv_format == "fp16":
            kb, vb = block.tensors
            block = _Block.int8(intfa.quantize(q_chunks[qi], kb, vb, **statistics), block.length)
        return _attend_int8(quantized[qi], block, scale, causal, q.dtype)

    def receive_buffers(source):
        """Empty blocks shaped like rank `source`'s chunks."""
        result = []
        for length, template in zip(chunk_lengths[source], blocks):
            if kv_format == "int8":
                # K, its scales and Vt of `length` keys, sized by the library's layout.
                hkv = k.shape[1]
                problem = intfa._lib.Problem(b, hkv, hkv, 1, length, d, 0.0, 0, intfa._lib.METHODS["int8"], 0)
                sizes = intfa._quantized_sizes(problem)
                tensors = [torch.empty(sizes.k, dtype=torch.int8, device=q.device),
                           torch.empty(sizes.k_scale // 4, dtype=torch.float32, device=q.device),
                           torch.empty(sizes.vt, dtype=torch.int8, device=q.device),
                           torch.empty_like(template.tensors[3])]
            else:
                tensors = [torch.empty(b, k.shape[1], length, d, dtype=k.dtype, device=q.device) for _ in range(2)]
            result.append(_Block(tensors, length))
        return result

    out = torch.empty(b, h, n, d, dtype=torch.float32, device=q.device)
    lse = torch.empty(b, h, n, dtype=torch.float32, device=q.device)
    written = [False] * len(splits)

    def accumulate(chunk, part, part_lse):
        """Merges a part into the chunk's rows; the chunk's first part is copied (a merge with
        the empty state would give the same, reading and writing out several times more)."""
        a, z = splits[chunk]
        if written[chunk]:
            merge(out[:, :, a:z], lse[:, :, a:z], part, part_lse)
        else:
            out[:, :, a:z].copy_(part)
            lse[:, :, a:z].copy_(part_lse)
            written[chunk] = True

    current = blocks
    for step in range(world):
        source = (rank - step) % world
        wait = None
        if step + 1 < world:
            incoming = receive_buffers((rank - step - 1) % world)
            wait = ring.exchange([t for blk in current for t in blk.tensors], [t for blk in incoming for t in blk.tensors])
        if not is_causal:
            accumulate(0, *attend(0, current[0], False))
        elif step == 0:
            # Own chunks: the diagonals, and the later query chunk over the earlier key chunk.
            accumulate(0, *attend(0, current[0], True))
            accumulate(1, *attend(1, current[0], False))
            accumulate(1, *attend(1, current[1], True))
        elif source < rank:
            # An earlier rank: its first chunk precedes both of ours, its second follows both.
            accumulate(0, *attend(0, current[0], False))
            accumulate(1, *attend(1, current[0], False))
        else:
            # A later rank: both its chunks precede our second chunk and follow our first.
            accumulate(1, *attend(1, current[0], False))
            accumulate(1, *attend(1, current[1], False))
        if wait is not None:
            wait()
            current = incoming
    return out.to(q.dtype)
