// The fp16 or bf16 input of a helper kernel (the quantizers, the merge, the log-sum-exp
// restore), chosen by -DINTFA_INPUT_BF16 (0: fp16, the default; 1: bf16): its conversion to
// fp32 and the suffix its kernel names end in (InputTypedKernel in Swift spells the same).
#pragma once
#include "common.cuh"

#ifndef INTFA_INPUT_BF16
#define INTFA_INPUT_BF16 0
#endif
#if INTFA_INPUT_BF16
#define INTFA_IN_SUFFIX bf16
#else
#define INTFA_IN_SUFFIX f16
#endif
#define INTFA_INPUT_CAT2(a, b) a##b
#define INTFA_INPUT_CAT(a, b) INTFA_INPUT_CAT2(a, b)
// `base` followed by _f16 or _bf16.
#define INTFA_INPUT_KERNEL_NAME(base) INTFA_INPUT_CAT(base, INTFA_INPUT_CAT(_, INTFA_IN_SUFFIX))

static INTFA_DEVICE float input_to_float(intfa_u16 bits) {
#if INTFA_INPUT_BF16
    return intfa_bf16_to_float(bits);
#else
    return intfa_half_to_float(bits);
#endif
}
