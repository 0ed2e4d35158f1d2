/// Choices for one GPU call beyond its problem: hints that change how it runs, never what it
/// computes. The defaults suit most calls; a family ignores the options it has no use for.
public struct AttentionOptions: Sendable, Hashable {
    /// The wgmma family's launch grid: nil for `INTFA_WGMMA_GRID`, else
    /// ``HopperKernelDescriptor/GridPolicy/default(causal:)``. One CTA per tile
    /// (``HopperKernelDescriptor/GridPolicy/perTile``) suits calls that share the GPU with
    /// other kernels (a ring's communication), where a persistent CTA that starts late holds
    /// back the tiles assigned to it. The mma family ignores it.
    public var grid: HopperKernelDescriptor.GridPolicy?

    /// Options with every default but those given.
    public init(grid: HopperKernelDescriptor.GridPolicy? = nil) {
        self.grid = grid
    }
}
