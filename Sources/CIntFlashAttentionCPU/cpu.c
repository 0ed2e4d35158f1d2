#include "intfa_cpu.h"
int intfa_cpu_placeholder(void) { return 0; }
