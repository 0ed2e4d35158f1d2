// The C interface's types live in include/intfa.h; its functions are defined in Swift
// (Sources/IntFlashAttentionC). This file only gives the header target a translation unit.
#include "intfa.h"
