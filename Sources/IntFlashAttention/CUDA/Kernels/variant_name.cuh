// Options every attention kernel shares (defaults for those not given with -D) and the
// fragments of their `extern "C"` names. Swift descriptors spell the same strings.
#pragma once

#ifndef INTFA_CAUSAL
#define INTFA_CAUSAL 0
#endif
#ifndef INTFA_OUT_BF16
#define INTFA_OUT_BF16 0
#endif
#ifndef INTFA_WRITE_LSE
#define INTFA_WRITE_LSE 0
#endif

#define INTFA_CAT2(a, b) a##b
#define INTFA_CAT(a, b) INTFA_CAT2(a, b)
#if INTFA_CAUSAL
#define INTFA_MASK_NAME _causal
#else
#define INTFA_MASK_NAME _full
#endif
#if INTFA_OUT_BF16
#define INTFA_OUT_NAME _bf16
#else
#define INTFA_OUT_NAME _f16
#endif
#if INTFA_WRITE_LSE
#define INTFA_LSE_NAME _lse
#else
#define INTFA_LSE_NAME
#endif
