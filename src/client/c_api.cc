#include "client/c_api.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "client/client.h"

struct llms_handle {
  std::unique_ptr<llms::Client> client;
};

namespace {

thread_local std::string last_error;

int Fail(const llms::Status& s) {
  last_error = s.ToString();
  switch (s.code()) {
    case llms::StatusCode::kOk:
      return LLMS_OK;
    case llms::StatusCode::kNotFound:
      return LLMS_E_NOT_FOUND;
    case llms::StatusCode::kCorruption:
      return LLMS_E_CORRUPTION;
    case llms::StatusCode::kInvalidArgument:
      return LLMS_E_INVALID_ARGUMENT;
    case llms::StatusCode::kIOError:
      return LLMS_E_IO;
    case llms::StatusCode::kResourceExhausted:
      return LLMS_E_RESOURCE_EXHAUSTED;
    case llms::StatusCode::kUnavailable:
      return LLMS_E_UNAVAILABLE;
  }
  return LLMS_E_INTERNAL;
}

// Runs `body`, turning any exception (allocation failure, say) into an error code: none may
// cross the C ABI.
template <typename Body>
int Guard(Body body) {
  try {
    return body();
  } catch (const std::exception& e) {
    last_error = std::string("internal error: ") + e.what();
  } catch (...) {
    last_error = "internal error";
  }
  return LLMS_E_INTERNAL;
}

int NullArgument(const char* what) {
  last_error = std::string("InvalidArgument: ") + what + " is NULL";
  return LLMS_E_INVALID_ARGUMENT;
}

}  // namespace

extern "C" {

int llms_bind(const char* socket_path, llms_handle** out) {
  if (out == nullptr) return NullArgument("out");
  return Guard([&]() -> int {
    const std::string path = socket_path != nullptr ? socket_path : llms::wire::DefaultSocketPath();
    auto client = llms::Client::Connect(path);
    if (!client.ok()) return Fail(client.status());
    auto handle = std::make_unique<llms_handle>();
    handle->client = std::move(client).value();
    *out = handle.release();  // owned by the C caller until llms_unbind
    return LLMS_OK;
  });
}

void llms_unbind(llms_handle* h) { std::unique_ptr<llms_handle> owned(h); }

int llms_new_ctx(llms_handle* h, const char* system_prompt, uint64_t* out_ctx) {
  if (h == nullptr) return NullArgument("handle");
  if (out_ctx == nullptr) return NullArgument("out_ctx");
  return Guard([&]() -> int {
    auto id = h->client->NewContext(system_prompt != nullptr ? system_prompt : "");
    if (!id.ok()) return Fail(id.status());
    *out_ctx = *id;
    return LLMS_OK;
  });
}

int llms_call(llms_handle* h, uint64_t ctx, const char* prompt, const llms_call_options* options,
              llms_text_fn on_text, void* user, char** out_text) {
  if (h == nullptr) return NullArgument("handle");
  if (prompt == nullptr) return NullArgument("prompt");
  return Guard([&]() -> int {
    llms::CallOptions o;
    if (options != nullptr) {
      if (options->max_tokens > 0) o.max_tokens = options->max_tokens;
      if (options->temperature >= 0) o.temperature = options->temperature;
      o.seed = options->seed;
    }
    auto reply = h->client->Call(ctx, prompt, o, [&](std::string_view text) {
      return on_text == nullptr || on_text(user, text.data(), text.size()) != 0;
    });
    if (!reply.ok()) return Fail(reply.status());
    if (out_text != nullptr) {
      *out_text = static_cast<char*>(std::malloc(reply->text.size() + 1));
      if (*out_text == nullptr) return Fail(llms::Status::ResourceExhausted("out of memory"));
      std::memcpy(*out_text, reply->text.c_str(), reply->text.size() + 1);
    }
    return LLMS_OK;
  });
}

int llms_cancel(llms_handle* h) {
  if (h == nullptr) return NullArgument("handle");
  return Guard([&]() -> int {
    h->client->Cancel();
    return LLMS_OK;
  });
}

int llms_del_ctx(llms_handle* h, uint64_t ctx) {
  if (h == nullptr) return NullArgument("handle");
  return Guard([&]() -> int {
    const llms::Status s = h->client->DeleteContext(ctx);
    return s.ok() ? LLMS_OK : Fail(s);
  });
}

void llms_free(void* p) { std::free(p); }

const char* llms_last_error(void) { return last_error.c_str(); }

}  // extern "C"
