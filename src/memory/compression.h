// Compression of resident chunks to the levels a policy gives them: the planner's levels from
// each chunk's density (tolerance-aware modes, per context or over every context) or one uniform
// level, applied by converting the chunks in place. A context's newest, partly filled chunk
// keeps f16. Converting down only releases memory, so it never needs the budget.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/context_table.h"
#include "memory/evictor.h"
#include "memory/policy.h"

namespace llms {

// Plans and converts the chunks of `contexts` (the members of one plan: one context, or every
// context in global mode). A chunk whose resident copy changes gets a new version from
// `*next_version` and is dirty, unless it now equals its stored copy. The evictor learns the new
// levels. REQUIRES: the memory manager's lock; no session is running on these contexts.
void CompressChunks(const Policy& policy, const std::vector<Context*>& contexts,
                    size_t chunk_tokens, uint64_t* next_version, Evictor* evictor);

}  // namespace llms
