import CIntFlashAttentionCPU
import Dispatch
import Foundation

/// Spreads independent work items over a fixed number of worker threads.
enum ParallelWork {
    /// Worker count for a request: `threads` when given (at least 1), else every active core.
    static func workerCount(_ threads: Int?) -> Int {
        max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Calls `body` once for every index in `0..<count`, on at most `threads` workers that take
    /// the next index from a shared counter (items of uneven cost, e.g. causal rows, balance
    /// themselves). Items must be independent; results then do not depend on the schedule.
    static func forEach(count: Int, threads: Int?, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let workers = min(count, workerCount(threads))
        if workers == 1 {
            for index in 0..<count { body(index) }
            return
        }
        let counter = SharedMutablePointer(base: UnsafeMutablePointer<CLong>.allocate(capacity: 1))
        counter.base.initialize(to: 0)
        defer { counter.base.deallocate() }
        withoutActuallyEscaping(body) { body in
            // concurrentPerform returns only after every worker has finished, so `body` and
            // what it captures outlive all calls; callers keep the items' writes disjoint.
            let work = UncheckedSendable(value: body)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let index = Int(intfa_next_work_item(counter.base))
                    if index >= count { break }
                    work.value(index)
                }
            }
        }
    }
}

/// A pointer handed to concurrent workers that write disjoint parts of its buffer.
struct SharedMutablePointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
}

/// A value handed to concurrent workers under the caller's guarantee of safe use.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}
