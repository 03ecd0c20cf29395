#include "store/extent_map.h"

#include <iterator>

namespace llms {

bool ExtentMap::AddCommitted(uint64_t offset, uint64_t length, uint64_t generation) {
  auto next = committed_.lower_bound(offset);
  if (next != committed_.end() && next->first < offset + length) return false;
  if (next != committed_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.length > offset) return false;
  }
  committed_.emplace(offset, Committed{length, generation});
  live_bytes_ += length;
  if (offset + length > end_) end_ = offset + length;
  return true;
}

void ExtentMap::RebuildHoles() {
  holes_.clear();
  hole_bytes_ = 0;
  uint64_t pos = 0;
  for (const auto& [offset, extent] : committed_) {
    if (offset > pos) AddHole(pos, offset - pos);
    pos = offset + extent.length;
  }
}

uint64_t ExtentMap::Reserve(uint64_t length) {
  for (auto it = holes_.begin(); it != holes_.end(); ++it) {
    if (it->second < length) continue;
    const uint64_t offset = it->first;
    const uint64_t rest = it->second - length;
    holes_.erase(it);
    if (rest > 0) holes_.emplace(offset + length, rest);
    hole_bytes_ -= length;
    return offset;
  }
  const uint64_t offset = end_;
  end_ += length;
  return offset;
}

void ExtentMap::Unreserve(uint64_t offset, uint64_t length) { AddHole(offset, length); }

void ExtentMap::Commit(uint64_t offset, uint64_t length, uint64_t generation) {
  committed_.emplace(offset, Committed{length, generation});
  live_bytes_ += length;
}

void ExtentMap::Retire(uint64_t offset) {
  auto it = committed_.find(offset);
  if (it == committed_.end()) return;
  if (it->second.pins > 0) {
    it->second.retired = true;
    return;
  }
  const uint64_t length = it->second.length;
  live_bytes_ -= length;
  committed_.erase(it);
  AddHole(offset, length);
}

bool ExtentMap::Pin(uint64_t offset, uint64_t length, uint64_t generation) {
  auto it = committed_.find(offset);
  if (it == committed_.end() || it->second.retired || it->second.generation != generation ||
      it->second.length < length) {
    return false;
  }
  it->second.pins++;
  return true;
}

void ExtentMap::Unpin(uint64_t offset) {
  auto it = committed_.find(offset);
  if (it == committed_.end() || it->second.pins == 0) return;
  if (--it->second.pins == 0 && it->second.retired) {
    it->second.retired = false;  // so Retire frees it now
    Retire(offset);
  }
}

void ExtentMap::AddHole(uint64_t offset, uint64_t length) {
  freed_.emplace_back(offset, length);
  auto next = holes_.lower_bound(offset);
  if (next != holes_.end() && next->first == offset + length) {  // merge with the next hole
    length += next->second;
    hole_bytes_ -= next->second;
    next = holes_.erase(next);
  }
  if (next != holes_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // merge with the previous hole
      offset = prev->first;
      length += prev->second;
      hole_bytes_ -= prev->second;
      holes_.erase(prev);
    }
  }
  if (offset + length == end_) {
    end_ = offset;  // a hole at the end is no hole: the data file can shrink
    return;
  }
  holes_.emplace(offset, length);
  hole_bytes_ += length;
}

}  // namespace llms
