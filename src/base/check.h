// LLMS_DCHECK: programmer-error checks for hot loops, compiled only into debug and sanitizer
// builds (STYLE rule 11). Bad input from files or sockets is a Status, never a DCHECK.
#pragma once

#include <cstdio>
#include <cstdlib>

#if !defined(NDEBUG) || defined(LLMS_DEBUG_CHECKS)
#define LLMS_DCHECK(cond)                                                                 \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: LLMS_DCHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
#else
#define LLMS_DCHECK(cond) \
  do {                    \
  } while (0)
#endif
