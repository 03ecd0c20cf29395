/* The plain C ABI of the llms client library, for bindings (Kotlin through JNI, Python through
 * ctypes, Swift). It mirrors the paper's interface: bindLLMService = llms_bind, newLLMCtx =
 * llms_new_ctx, callLLM = llms_call, delLLMCtx = llms_del_ctx. Every function returns 0 on
 * success or a nonzero error code (LLMS_E_*); llms_last_error() then gives a message for the
 * calling thread. No C++ exception crosses this boundary. Strings are UTF-8, NUL-terminated.
 * A handle is used by one thread at a time, except llms_cancel, which any thread may call. */
#ifndef LLMS_CLIENT_C_API_H_
#define LLMS_CLIENT_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMS_C_API __attribute__((visibility("default")))

typedef struct llms_handle llms_handle;

enum {
  LLMS_OK = 0,
  LLMS_E_NOT_FOUND = 1,
  LLMS_E_CORRUPTION = 2,
  LLMS_E_INVALID_ARGUMENT = 3,
  LLMS_E_IO = 4,
  LLMS_E_RESOURCE_EXHAUSTED = 5,
  LLMS_E_UNAVAILABLE = 6,
  LLMS_E_INTERNAL = 99
};

/* Receives each piece of generated text (not NUL-terminated: `len` bytes); returns nonzero to
 * go on, 0 to cancel the call. */
typedef int (*llms_text_fn)(void* user, const char* text, size_t len);

typedef struct llms_call_options {
  size_t max_tokens; /* 0: the default, 128 */
  float temperature; /* negative: the default, 0.8; 0: greedy */
  uint64_t seed;
} llms_call_options;

/* Connects to llmsd at `socket_path` (NULL: $LLMS_SOCKET, else $XDG_RUNTIME_DIR/llmsd.sock,
 * else /run/llms/llmsd.sock). */
LLMS_C_API int llms_bind(const char* socket_path, llms_handle** out);
LLMS_C_API void llms_unbind(llms_handle* h);
LLMS_C_API int llms_new_ctx(llms_handle* h, const char* system_prompt, uint64_t* out_ctx);
/* Generates a reply to `prompt` in context `ctx`. The whole reply is returned in *out_text
 * (free it with llms_free) when out_text is not NULL; on_text (may be NULL) streams it. */
LLMS_C_API int llms_call(llms_handle* h, uint64_t ctx, const char* prompt,
                         const llms_call_options* options, llms_text_fn on_text, void* user,
                         char** out_text);
LLMS_C_API int llms_cancel(llms_handle* h);
LLMS_C_API int llms_del_ctx(llms_handle* h, uint64_t ctx);
LLMS_C_API void llms_free(void* p);
LLMS_C_API const char* llms_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* LLMS_CLIENT_C_API_H_ */
