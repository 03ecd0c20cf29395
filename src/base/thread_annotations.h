// Clang thread-safety annotations (STYLE rule 9). They expand to nothing on other compilers, so
// GCC builds are unaffected; a clang build with -Wthread-safety checks them.
#pragma once

#if defined(__clang__)
#define LLMS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define LLMS_THREAD_ANNOTATION(x)
#endif

#define GUARDED_BY(x) LLMS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) LLMS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) LLMS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) LLMS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
