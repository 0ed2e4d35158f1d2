/// Sizes computed from caller-given extents, with overflow reported instead of trapping:
/// a product that does not fit in `Int` is a problem no memory could hold.
enum CheckedSize {
    /// The product of `factors`, or nil when it overflows (or a factor is negative).
    static func product(_ factors: Int...) -> Int? { product(factors) }

    /// The product of `factors`, or nil when it overflows (or a factor is negative).
    static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// The sum of `terms`, or nil when it overflows.
    static func sum(_ terms: Int...) -> Int? {
        var result = 0
        for term in terms {
            let (next, overflow) = result.addingReportingOverflow(term)
            if overflow { return nil }
            result = next
        }
        return result
    }
}
