/// The `int8` scheme's K scale groups (docs/SCHEMES.md): within each span of 32 keys, group
/// `t` (0…3) holds the 8 keys `32G + 8a + 2t + e` (`a` in 0…3, `e` in 0…1), the keys one
/// thread of a GPU warp holds in each row of its score fragment, so that a thread's scores of
/// a row share one K scale per span. Scales are stored per key tile of 128 keys, quad-major:
/// group `(G, t)` at `16·(G / 4) + 4t + G % 4`, so a thread reads its four as one vector.
public enum KeyGroups {
    /// Keys per tile: the stride of the stored scales, and the padding of K scales and Vt.
    public static let tileKeys = 128
    /// Keys per group.
    public static let groupKeys = 8

    /// Index, in a head's scales, of the group that holds key `key`.
    public static func scaleIndex(ofKey key: Int) -> Int {
        let span = key / 32
        return 16 * (span / 4) + 4 * ((key % 8) / 2) + span % 4
    }

    /// The keys of the group stored at `index` (fewer past `keyLength`).
    public static func keys(ofScaleIndex index: Int, keyLength: Int) -> [Int] {
        let span = 4 * (index / 16) + index % 4, quad = (index % 16) / 4
        return (0..<8).map { 32 * span + 8 * ($0 / 2) + 2 * quad + $0 % 2 }.filter { $0 < keyLength }
    }
}
