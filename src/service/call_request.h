// A native "call" message, validated into what the service runs: the context, the prompt (text
// or token ids) and the generation options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/generate.h"
#include "protocol/wire.h"

namespace llms {

struct CallRequest {
  uint64_t context = 0;
  std::string prompt;
  bool has_tokens = false;      // the prompt came as token ids
  std::vector<int32_t> tokens;  // then: these
  GenerateOptions options;
};

// InvalidArgument naming the field for anything malformed; `window` bounds max_tokens and
// `vocab` the token ids.
StatusOr<CallRequest> ParseCall(const wire::Json& m, size_t window, size_t vocab);

}  // namespace llms
