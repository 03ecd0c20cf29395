#include "service/call_request.h"

#include <algorithm>

namespace llms {

using wire::Json;

StatusOr<CallRequest> ParseCall(const Json& m, size_t window, size_t vocab) {
  CallRequest c;
  LLMS_ASSIGN_OR_RETURN(c.context, wire::GetUint(m, "context"));
  if (m.contains("prompt_tokens")) {
    const Json& ids = m["prompt_tokens"];
    if (!ids.is_array()) return Status::InvalidArgument("field 'prompt_tokens': expected an array");
    for (const Json& t : ids) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          static_cast<uint64_t>(t.get<int64_t>()) >= vocab) {
        return Status::InvalidArgument("field 'prompt_tokens': expected token ids below " +
                                       std::to_string(vocab));
      }
      c.tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    c.has_tokens = true;
  } else {
    LLMS_ASSIGN_OR_RETURN(c.prompt, wire::GetString(m, "prompt"));
  }
  LLMS_ASSIGN_OR_RETURN(uint64_t max_tokens, wire::GetUint(m, "max_tokens", 128));
  if (max_tokens > window) {
    return Status::InvalidArgument("max_tokens " + std::to_string(max_tokens) +
                                   " exceeds the model window of " + std::to_string(window));
  }
  c.options.max_tokens = max_tokens;
  SamplingOptions& s = c.options.sampling;
  LLMS_ASSIGN_OR_RETURN(double temperature, wire::GetNumber(m, "temperature", s.temperature));
  LLMS_ASSIGN_OR_RETURN(double top_p, wire::GetNumber(m, "top_p", s.top_p));
  LLMS_ASSIGN_OR_RETURN(uint64_t top_k, wire::GetUint(m, "top_k", static_cast<uint64_t>(s.top_k)));
  LLMS_ASSIGN_OR_RETURN(double repeat, wire::GetNumber(m, "repeat_penalty", s.repeat_penalty));
  LLMS_ASSIGN_OR_RETURN(s.seed, wire::GetUint(m, "seed", s.seed));
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p);
  s.top_k = static_cast<int>(std::min<uint64_t>(top_k, 1u << 20));
  s.repeat_penalty = static_cast<float>(repeat);
  if (std::string why = s.Validate(); !why.empty()) return Status::InvalidArgument(why);
  if (m.contains("stop") && !m["stop"].is_null()) {
    const Json& stop = m["stop"];
    if (stop.is_string()) {
      c.options.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 16) {
      for (const Json& s1 : stop) {
        if (!s1.is_string() || s1.get<std::string>().empty()) {
          return Status::InvalidArgument("field 'stop': expected non-empty strings");
        }
        c.options.stop.push_back(s1.get<std::string>());
      }
    } else {
      return Status::InvalidArgument("field 'stop': expected a string or up to 16 strings");
    }
  }
  return c;
}

}  // namespace llms
