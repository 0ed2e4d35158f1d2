import CIntFlashAttentionCPU
import Foundation

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
    /// by the environment variable `INTFA_CPU_ISA=scalar|avx2|avxvnni|avx512` when set. An
    /// unknown value leaves the best one; ``fromEnvironment()`` refuses it instead.
    public static var selected: CPUKernelISA { CPUKernelISA(intfa_cpu_default_isa()) }

    /// The variable that lowers the CPU kernels' instruction set.
    public static let environmentVariable = "INTFA_CPU_ISA"

    /// The values `INTFA_CPU_ISA` accepts: the names of `intfa info` and their short forms.
    public static let environmentValues = ["scalar", "avx2", "avxvnni", "avx-vnni", "avx512", "avx512-vnni"]

    /// ``selected``, after checking `INTFA_CPU_ISA`: throws `invalidEnvironment` for a value
    /// that names no instruction set, which would otherwise be ignored without a word.
    public static func fromEnvironment() throws(AttentionError) -> CPUKernelISA {
        if let raw = getenv(environmentVariable), case let value = String(cString: raw), !value.isEmpty,
           !environmentValues.contains(value) {
            throw .invalidEnvironment(
                variable: environmentVariable, value: value, expected: environmentValues.joined(separator: ", "))
        }
        return selected
    }

    /// The supported instruction set closest to `self` from below.
    public var clampedToSupported: CPUKernelISA { CPUKernelISA(intfa_cpu_clamp_isa(cValue)) }

    /// Orders from the lowest instruction set to the highest.
    public static func < (lhs: CPUKernelISA, rhs: CPUKernelISA) -> Bool {
        lhs.cValue.rawValue < rhs.cValue.rawValue
    }
}
