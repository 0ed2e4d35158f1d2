#pragma once
int intfa_cpu_placeholder(void);
