import CIntFlashAttentionCPU

/// Instruction sets the CPU attention tiles are compiled for, lowest first. All produce the
/// same bits; they differ only in speed.
public enum CPUKernelISA: String, CaseIterable, Sendable, Hashable, Comparable {
    /// Portable C, always available.
    case scalar
    /// AVX2 + FMA; u8·s8 dot products widened to 16 bits (vpmaddwd), exact.
    case avx2
    /// AVX2 + FMA + AVX-VNNI (256-bit vpdpbusd).
    case avxVNNI = "avx-vnni"
    /// AVX-512 F/BW/VL + VNNI (512-bit vpdpbusd).
    case avx512 = "avx512-vnni"

    var cValue: intfa_isa {
        switch self {
        case .scalar: return INTFA_ISA_SCALAR
        case .avx2: return INTFA_ISA_AVX2
        case .avxVNNI: return INTFA_ISA_AVXVNNI
        case .avx512: return INTFA_ISA_AVX512
        }
    }

    init(_ value: intfa_isa) {
        switch value {
        case INTFA_ISA_AVX512: self = .avx512
        case INTFA_ISA_AVXVNNI: self = .avxVNNI
        case INTFA_ISA_AVX2: self = .avx2
        default: self = .scalar
        }
    }

    /// Whether this CPU can run the instruction set.
    public var isSupported: Bool { intfa_cpu_isa_supported(cValue) != 0 }

    /// The instruction set the CPU path uses by default: the best this CPU supports, lowered
    /// by the environment variable `INTFA_CPU_ISA=scalar|avx2|avxvnni|avx512` when set.
    public static var selected: CPUKernelISA { CPUKernelISA(intfa_cpu_default_isa()) }

    /// The supported instruction set closest to `self` from below.
    public var clampedToSupported: CPUKernelISA { CPUKernelISA(intfa_cpu_clamp_isa(cValue)) }

    /// Orders from the lowest instruction set to the highest.
    public static func < (lhs: CPUKernelISA, rhs: CPUKernelISA) -> Bool {
        lhs.cValue.rawValue < rhs.cValue.rawValue
    }
}
