// ExtentMap: which byte ranges of chunks.dat are free, reserved by a write in flight, or
// committed (pointed to by a chunk row), plus reader pins that keep a replaced extent from
// being reused while a read of it is in flight.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace llms {

// Every offset and length is a multiple of kExtentAlignment (the caller guarantees it).
// A byte range below end() is in exactly one state: free (a hole), reserved, or committed.
// Thread safety: none; ChunkStore's mutex guards it.
class ExtentMap {
 public:
  // Recovery: adds a committed extent unless it overlaps one added before; false if it does.
  bool AddCommitted(uint64_t offset, uint64_t length, uint64_t generation);
  // Recovery, after the last AddCommitted: every range below the end of the last committed
  // extent that no committed extent covers becomes a hole.
  void RebuildHoles();

  // Reserves `length` bytes for a write: the first hole that fits (lowest offset), else at the
  // end. Returns the offset.
  uint64_t Reserve(uint64_t length);
  // Gives back a reservation whose write failed.
  void Unreserve(uint64_t offset, uint64_t length);
  // A reservation now backs the committed chunk row of `generation`.
  void Commit(uint64_t offset, uint64_t length, uint64_t generation);
  // The committed extent at `offset` lost its row; it becomes a hole once no reader pins it.
  void Retire(uint64_t offset);

  // Pins the committed extent at `offset` if it still backs `generation` and covers
  // [offset, offset + length); false when it was replaced, deleted or never existed.
  bool Pin(uint64_t offset, uint64_t length, uint64_t generation);
  // REQUIRES: a successful Pin(offset, ...) not yet unpinned.
  void Unpin(uint64_t offset);

  // The ranges that became free since the last call (before merging with neighbours), so the
  // store can give their blocks back to the file system.
  std::vector<std::pair<uint64_t, uint64_t>> TakeFreed() { return std::move(freed_); }

  uint64_t end() const { return end_; }
  uint64_t live_bytes() const { return live_bytes_; }
  uint64_t hole_bytes() const { return hole_bytes_; }
  uint64_t committed_count() const { return committed_.size(); }

 private:
  struct Committed {
    uint64_t length;
    uint64_t generation;
    uint32_t pins = 0;
    bool retired = false;  // its row is gone; free it at the last Unpin
  };
  // Makes [offset, offset + length) a hole, merging neighbours; a hole that reaches end_ is
  // cut off instead, so end_ only covers reserved and committed bytes.
  void AddHole(uint64_t offset, uint64_t length);

  std::vector<std::pair<uint64_t, uint64_t>> freed_;  // offset, length
  std::map<uint64_t, uint64_t> holes_;                // offset -> length, disjoint, not adjacent
  std::map<uint64_t, Committed> committed_;           // offset -> extent
  uint64_t end_ = 0;
  uint64_t live_bytes_ = 0;  // committed, including retired but pinned
  uint64_t hole_bytes_ = 0;
};

}  // namespace llms
