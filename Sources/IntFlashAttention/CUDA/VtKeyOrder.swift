/// The order of the keys inside each 32-key group of the GPU's Vt (docs/SCHEMES.md, GPU
/// layout): the attention kernels turn the Q·Kᵀ accumulator fragment straight into the P·V A
/// fragment, the two fragments number keys differently, and storing Vt's keys in this order
/// makes them agree. The one source of the order: `quantize.cu` receives it as
/// `-DINTFA_VT_KEY_ORDER` and asserts at compile time that its `vt_position` places every key
/// where this says; the host reads Vt back through it (`intfa check`, the wgmma layout test).
enum VtKeyOrder {
    /// Keys per group.
    static let groupKeys = 32

    /// The key stored at `position` of Vt's row (any position: the order repeats every group).
    static func key(atPosition position: Int) -> Int {
        let group = position / groupKeys * groupKeys, r = position % groupKeys
        return group + 16 * (r / 16) + 8 * ((r % 4) / 2) + 2 * ((r % 16) / 4) + (r % 2)
    }

    /// `-DINTFA_VT_KEY_ORDER=k0,k1,…`: the key at each position of a group.
    static var compileOption: String {
        "-DINTFA_VT_KEY_ORDER=" + (0..<groupKeys).map { String(key(atPosition: $0)) }.joined(separator: ",")
    }
}
