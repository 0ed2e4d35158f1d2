/// A CUDA event, for timing and for waiting on a point in a stream; destroyed when released.
///
/// `@unchecked Sendable`: the handle is immutable and the driver API is thread-safe.
public final class CUDAEvent: @unchecked Sendable {
    /// The context the event belongs to.
    public let context: CUDAContext
    let handle: OpaquePointer?

    /// Creates an event; `timing: false` makes recording cheaper (`CU_EVENT_DISABLE_TIMING`).
    public init(context: CUDAContext, timing: Bool = true) throws(CUDAError) {
        try context.makeCurrent()
        var event: OpaquePointer?
        try context.api.check(context.api.eventCreate(&event, timing ? 0 : 2), "cuEventCreate")
        self.context = context
        self.handle = event
    }

    deinit {
        _ = context.api.ctxSetCurrent(context.handle)
        _ = context.api.eventDestroy(handle)
    }

    /// Records the event at the current end of `stream`.
    public func record(on stream: CUDAStream) throws(CUDAError) {
        try context.makeCurrent()
        try context.api.check(context.api.eventRecord(handle, stream.handle), "cuEventRecord")
    }

    /// Waits until the stream has passed the recorded point.
    public func synchronize() throws(CUDAError) {
        try context.makeCurrent()
        try context.api.check(context.api.eventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds between `start` and this event; both must have been recorded and this
    /// one completed (call ``synchronize()`` first).
    public func elapsedMilliseconds(since start: CUDAEvent) throws(CUDAError) -> Float {
        try context.makeCurrent()
        var milliseconds: Float = 0
        try context.api.check(context.api.eventElapsedTime(&milliseconds, start.handle, handle), "cuEventElapsedTime")
        return milliseconds
    }
}
