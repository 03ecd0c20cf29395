// Clang thread-safety annotations (STYLE rule 9). They expand to nothing on other compilers, so
// GCC builds are unaffected; the `thread-safety` preset builds with clang and
// -Wthread-safety -Werror, so a GUARDED_BY field touched without its mutex fails the build.
// They apply to llms::Mutex (base/mutex.h), the annotated mutex; std::mutex is not annotated.
#pragma once

#if defined(__clang__)
#define LLMS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define LLMS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) LLMS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY LLMS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) LLMS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) LLMS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) LLMS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) LLMS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) LLMS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) LLMS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) LLMS_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS LLMS_THREAD_ANNOTATION(no_thread_safety_analysis)
