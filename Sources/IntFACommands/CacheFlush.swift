import ArgumentParser
import CUDADriver
import IntFlashAttention

/// How a decode benchmark empties the L2 cache before each timed run (outside the timed
/// region). A 256 MiB zero fill evicts every line the last run left, but leaves the L2 full of
/// the fill's dirty lines, and the timed call then pays for writing them back as its reads
/// evict them: about 8 µs of a single-sequence step at Nk = 128k, for our kernel and SDPA's
/// alike (docs/PERFORMANCE.md).
enum CacheFlushMode: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// The zero fill, then a read of the same 256 MiB: the L2 holds only clean lines that
    /// the timed call owes nothing for.
    case clean
    /// The zero fill alone (the usual `cache.zero_()` of benchmark harnesses).
    case dirty
}

/// The flush itself: a scratch buffer, and for `.clean` the read sweep's kernel.
struct CacheFlush {
    static let byteCount = 256 << 20

    let mode: CacheFlushMode
    let engine: CUDAAttention
    let scratch: DeviceBuffer
    let address: UInt64

    init(mode: CacheFlushMode, engine: CUDAAttention) throws(AttentionError) {
        self.mode = mode
        self.engine = engine
        let context = engine.context
        (scratch, address) = try cuda { () throws(CUDAError) in
            let scratch = try DeviceBuffer(context: context, byteCount: Self.byteCount)
            return (scratch, try scratch.pointer().address)
        }
    }

    /// Queues the flush on the engine's stream.
    func run() throws(AttentionError) {
        let stream = engine.stream
        try cuda { () throws(CUDAError) in try stream.fill(scratch, byte: 0) }
        guard mode == .clean else { return }
        let kernel = L2SweepKernel(arch: engine.architecture)
        let params = L2SweepKernel.Params(address: address, words: UInt64(Self.byteCount / 16))
        try engine.launch(kernel, grid: LaunchDimensions(4 * engine.context.properties.multiprocessorCount),
                          block: LaunchDimensions(L2SweepKernel.threads), params: params, on: stream)
    }
}

/// A kernel that reads a buffer and writes nothing (its XOR of every word is compared with a
/// value it cannot equal without being stored): the benchmark's read sweep, compiled from the
/// source below rather than shipped with the library.
struct L2SweepKernel: KernelVariant {
    struct Params: BitwiseCopyable {
        var address: UInt64
        /// 16-byte words to read.
        var words: UInt64
    }

    static let threads = 512
    var arch: String
    var sourceFile: String { "l2_sweep.cu" }
    var kernelName: String { "intfa_bench_l2_sweep" }
    var compileOptions: [String] { ["-arch=\(arch)", "-std=c++17"] }
    var sharedMemoryBytes: Int { 0 }

    func compilationRequest() throws(AttentionError) -> CompilationRequest { compilationRequest(source: Self.source) }

    static let source = """
        struct SweepParams { unsigned long long address, words; };
        extern "C" __global__ void __launch_bounds__(512) intfa_bench_l2_sweep(const SweepParams p) {
            const uint4* words = (const uint4*)p.address;
            unsigned folded = 0;
            for (unsigned long long i = blockIdx.x * 512ull + threadIdx.x; i < p.words; i += gridDim.x * 512ull) {
                const uint4 w = words[i];
                folded ^= w.x ^ w.y ^ w.z ^ w.w;
            }
            // Never true for the zeroed buffer; keeps the loads from being dropped.
            if (folded == 0x9E3779B9u) ((uint4*)p.address)[0] = make_uint4(folded, 0, 0, 0);
        }
        """
}
