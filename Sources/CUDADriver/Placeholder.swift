public enum CUDAPlaceholder {}
