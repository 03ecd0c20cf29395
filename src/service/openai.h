// The OpenAI-compatible API of llmsd, as logic apart from HTTP: parsing /v1/chat/completions and
// /v1/completions bodies, rendering a chat into text, finding the persistent context a stateless
// request continues, and shaping responses and stream chunks.
//
// Context reuse: a stateless client resends the whole conversation each turn. The request's text
// is compared with the decoded text of each of the app's contexts, and the longest context whose
// text is a prefix of it is continued with only the rest, so its KV is reused (and restored from
// flash if it was evicted). Text, not token ids, is compared, so a reply that would tokenize
// differently when resent still matches. docs/openai.md has the details and the chat format.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "memory/kv_manager.h"
#include "model/tokenizer.h"
#include "protocol/wire.h"

namespace llms::openai {

using wire::Json;

enum class Endpoint { kChat, kCompletion };

struct Request {
  Endpoint endpoint = Endpoint::kChat;
  std::string text;  // the conversation rendered (chat) or the prompt (completion)
  std::vector<std::string> stop;
  uint64_t max_tokens = 128;
  double temperature = 0.8, top_p = 0.95;
  uint64_t seed = 0;
  bool stream = false, include_usage = false;
  uint64_t context = 0;  // an explicit context id ("context" field or X-Llms-Context), or 0
};

// Parses a request body. InvalidArgument naming the field for anything malformed.
StatusOr<Request> ParseRequest(Endpoint endpoint, const std::string& body);

// The chat rendered as text for the model: a recognised GGUF chat template (ChatML) or the plain
// format "System: ...\n\nUser: ...\nAssistant: ...\n", ending with the assistant's cue. Adds the
// stop strings that end an assistant turn to *stop.
StatusOr<std::string> RenderChat(const Json& messages, const std::string& chat_template,
                                 std::vector<std::string>* stop);

// Where a request's text goes: an existing context and the tokens to append, or a new context.
struct Placement {
  uint64_t context = 0;         // 0: create one
  std::vector<int32_t> prompt;  // tokens to append
  size_t reused_tokens = 0;     // tokens of the context that are not recomputed from the request
};
// Finds the context of `app` that `text` continues (see the file comment), leaving out those
// for which `busy` is true (another call is running on them) and damaged ones. With `context`
// set, that context is used: the rest of the text when its text is a prefix, else the whole text
// appended.
StatusOr<Placement> Place(KvManager* manager, const Tokenizer& tokenizer, const std::string& app,
                          const std::string& text, uint64_t context,
                          const std::function<bool(uint64_t)>& busy);

// Response bodies. `usage` is a native done message's usage (prompt_tokens: the new tokens,
// cached_tokens: those the context already held, completion_tokens).
Json Completion(const Request& r, const std::string& model, const std::string& id,
                const std::string& text, const std::string& stop_reason, const Json& usage);
Json Chunk(const Request& r, const std::string& model, const std::string& id,
           const std::string& text, const char* finish_reason);
// OpenAI's usage object: prompt_tokens counts the whole prompt, and
// prompt_tokens_details.cached_tokens the part served from the persistent context.
Json Usage(const Json& usage);
Json Models(const std::string& model);
// {"error":{"message":...,"type":...,"code":...}}
Json Error(const Status& status);

}  // namespace llms::openai
