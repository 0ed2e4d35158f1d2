/// The kernel families that run attention on a CUDA device.
public enum AttentionKernelFamily: String, Sendable, CaseIterable {
    /// Hopper warpgroup MMAs with TMA and warp specialization (`attention_wgmma.cu`): the
    /// default `int8` scheme on compute capability 9.0.
    case wgmma
    /// Warp-level `mma.sync` (`attention.cu`): every method, sm_80 and newer.
    case mma

    /// The environment variable that forces a family (`wgmma` or `mma`) when the caller
    /// does not choose one.
    public static let environmentVariable = "INTFA_KERNEL"

    /// The family forced by `INTFA_KERNEL`, nil when unset; throws for any other value.
    public static func fromEnvironment(_ environment: [String: String]) throws(AttentionError) -> AttentionKernelFamily? {
        guard let value = environment[environmentVariable], !value.isEmpty else { return nil }
        guard let family = AttentionKernelFamily(rawValue: value.lowercased()) else {
            throw .gpu("\(environmentVariable)=\(value) is not a kernel family (wgmma or mma)")
        }
        return family
    }

    /// Which family runs `method` at `headDim` on `arch` (the NVRTC architecture of the
    /// device): `requested` when given (an error when it cannot run the problem), else wgmma
    /// wherever it applies and mma everywhere else.
    public static func select(
        method: AttentionMethod, headDim: Int, arch: String, requested: AttentionKernelFamily?
    ) throws(AttentionError) -> AttentionKernelFamily {
        let wgmmaFits = method == .int8 && HopperKernelDescriptor.supports(arch: arch)
            && HopperKernelDescriptor.headDims.contains(headDim)
        switch requested {
        case .wgmma?:
            guard wgmmaFits else {
                throw .unsupportedMethod(
                    method: method.rawValue, backend: "cuda",
                    reason: "the wgmma kernels run int8 at D = 64 or 128 on compute capability 9.0 only (\(arch), D = \(headDim))")
            }
            return .wgmma
        case .mma?: return .mma
        case nil: return wgmmaFits ? .wgmma : .mma
        }
    }
}
