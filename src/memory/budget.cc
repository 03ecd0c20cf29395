#include "memory/budget.h"

#include "base/check.h"

namespace llms {

bool MemoryBudget::TryReserve(size_t bytes) {
  size_t used = used_.load();
  do {
    if (bytes > limit_ || used > limit_ - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  size_t peak = peak_.load();
  while (used + bytes > peak && !peak_.compare_exchange_weak(peak, used + bytes)) {
  }
  return true;
}

void MemoryBudget::Release(size_t bytes) {
  const size_t before = used_.fetch_sub(bytes);
  LLMS_DCHECK(before >= bytes);
  (void)before;
}

}  // namespace llms
