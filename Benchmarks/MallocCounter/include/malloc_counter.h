// Counts the heap allocations of the whole process (every thread, every library), for the
// benchmarks' "allocations per event". Linked into the benchmark executable only: its
// malloc family takes the place of the C library's and forwards to it.
#pragma once
#include <stdint.h>

/// Allocations (malloc, calloc, realloc of a null pointer, aligned forms) since the start.
uint64_t malloc_counter_allocations(void);
