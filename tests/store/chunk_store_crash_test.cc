// SIGKILL at random moments: a forked child writes and deletes chunks in a loop, logging each
// operation before and after it; the parent kills it, reopens the store and checks that every
// chunk is the last completed version (or the one in flight), reads back byte-exact, and that
// the store takes new writes. Fixed seed; 20 rounds of a few tens of milliseconds each.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "store/chunk_store.h"
#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::TempDir;

// One log line of the child: written with one write(2) to an O_APPEND file, which a SIGKILL
// cannot split.
struct LogRecord {
  uint32_t phase;  // kIntent before the operation, kDone after it returned
  uint32_t op;     // kWrite or kDelete
  uint64_t context_id;
  uint64_t chunk_index;
  uint64_t seed;  // kWrite: the payload seed, also stored in the chunk's stats
};
constexpr uint32_t kIntent = 1, kDone = 2;
constexpr uint32_t kWrite = 1, kDelete = 2;

// Geometry and bytes of a chunk follow from its seed, so the parent can check any version.
ChunkMeta MetaForSeed(uint64_t ctx, uint32_t index, uint64_t seed) {
  ChunkMeta m;
  m.context_id = ctx;
  m.chunk_index = index;
  m.num_layers = 1 + seed % 6;
  m.layer_bytes = 100 + static_cast<uint32_t>((seed >> 8) % 9000);
  m.stats.resize(8);
  for (int b = 0; b < 8; ++b) m.stats[b] = static_cast<uint8_t>(seed >> (8 * b));
  return m;
}

uint64_t SeedOf(const ChunkMeta& m) {
  uint64_t seed = 0;
  for (size_t b = 0; b < 8 && b < m.stats.size(); ++b) seed |= uint64_t{m.stats[b]} << (8 * b);
  return seed;
}

void Log(int fd, const LogRecord& r) {
  if (write(fd, &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) _exit(3);
}

// Opens the store, writes one byte to `ready_fd`, then works until killed; writes another byte
// when its first operation has completed.
[[noreturn]] void ChildLoop(const std::string& dir, const std::string& log_path,
                            const std::vector<uint64_t>& ctxs, uint32_t round, int ready_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int log = open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  auto store = ChunkStore::Open(Env::Default(), dir, {});
  if (log < 0 || !store.ok()) _exit(2);
  const char ready = 1;
  if (write(ready_fd, &ready, 1) != 1) _exit(6);
  std::mt19937_64 rng(1000 + round);
  bool told = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    const uint64_t ctx = ctxs[rng() % ctxs.size()];
    const uint32_t index = static_cast<uint32_t>(rng() % 8);
    const bool del = rng() % 10 == 0;
    const uint64_t seed = rng() | 1;
    Log(log, {kIntent, del ? kDelete : kWrite, ctx, index, seed});
    if (del) {
      const Status s = (*store)->DeleteChunk(ctx, index);
      if (!s.ok() && s.code() != StatusCode::kNotFound) _exit(4);
    } else {
      const ChunkMeta m = MetaForSeed(ctx, index, seed);
      if (!(*store)->WriteChunk(m, testing::RandomBytes(m.data_bytes(), seed)).ok()) _exit(5);
    }
    Log(log, {kDone, del ? kDelete : kWrite, ctx, index, seed});
    if (!told && write(ready_fd, &ready, 1) != 1) _exit(6);
    told = true;
  }
  _exit(0);
}

using Key = std::pair<uint64_t, uint32_t>;
constexpr uint64_t kAbsent = 0;         // seeds are odd, so 0 marks a chunk that is not stored
using Model = std::map<Key, uint64_t>;  // chunk -> seed of the stored version, or kAbsent

// Applies the log records after `*offset` to the model; returns the operation in flight at the
// kill (an intent without its done), if any.
std::optional<LogRecord> ApplyLog(const std::string& path, size_t* offset, Model* model,
                                  size_t* done) {
  std::vector<LogRecord> records;
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    LogRecord r;
    while (pread(fd, &r, sizeof(r), static_cast<off_t>(*offset)) == sizeof(r)) {
      records.push_back(r);
      *offset += sizeof(r);
    }
    close(fd);
  }
  std::optional<LogRecord> pending;
  for (const LogRecord& r : records) {
    if (r.phase == kIntent) {
      pending = r;
      continue;
    }
    const Key key{r.context_id, static_cast<uint32_t>(r.chunk_index)};
    (*model)[key] = r.op == kWrite ? r.seed : kAbsent;
    pending.reset();
    ++*done;
  }
  return pending;
}

// Checks the reopened store against the model and resolves the in-flight operation to what
// the store shows.
void Verify(ChunkStore* store, const std::vector<uint64_t>& ctxs, Model* model,
            const std::optional<LogRecord>& pending) {
  std::map<Key, ChunkMeta> stored;
  uint64_t end = 0;
  for (uint64_t ctx : ctxs) {
    auto chunks = store->ListChunks(ctx);
    ASSERT_OK(chunks);
    for (const ChunkMeta& m : *chunks) {
      stored[{ctx, m.chunk_index}] = m;
      end = std::max(end, m.extent_offset + m.extent_length);
    }
  }
  EXPECT_EQ(store->stats().data_file_bytes, end);  // uncommitted tails were cut off
  std::set<Key> keys;
  for (const auto& [k, v] : *model) keys.insert(k);
  for (const auto& [k, v] : stored) keys.insert(k);
  for (const Key& key : keys) {
    SCOPED_TRACE("context " + std::to_string(key.first) + " chunk " + std::to_string(key.second));
    auto it = stored.find(key);
    const uint64_t got = it == stored.end() ? kAbsent : SeedOf(it->second);
    const uint64_t last = model->count(key) ? (*model)[key] : kAbsent;
    bool in_flight = false;
    if (pending && pending->context_id == key.first && pending->chunk_index == key.second) {
      in_flight = got == (pending->op == kWrite ? pending->seed : kAbsent);
    }
    ASSERT_TRUE(got == last || in_flight) << "stored " << got << ", last done " << last;
    (*model)[key] = got;
    if (got == kAbsent) continue;
    const ChunkMeta& m = it->second;
    const ChunkMeta want = MetaForSeed(key.first, key.second, got);
    ASSERT_EQ(m.num_layers, want.num_layers);
    ASSERT_EQ(m.layer_bytes, want.layer_bytes);
    std::vector<uint8_t> bytes(m.data_bytes());
    ASSERT_OK(testing::ReadChunk(store, m, bytes));
    ASSERT_EQ(bytes, testing::RandomBytes(m.data_bytes(), got));
  }
}

TEST(CrashTest, SigkillAtRandomMomentsLosesNoCommittedChunk) {
  TempDir tmp;
  const std::string dir = tmp.File("store"), log = tmp.File("ops.log");
  std::vector<uint64_t> ctxs;
  {
    auto store = ChunkStore::Open(Env::Default(), dir, {});
    ASSERT_OK(store);
    for (int i = 0; i < 3; ++i) ctxs.push_back(*(*store)->CreateContext("app", {}));
  }  // closed before any fork
  std::mt19937 rng(42);
  Model model;
  size_t offset = 0, done = 0, recovered_tails = 0;
  for (uint32_t round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ChildLoop(dir, log, ctxs, round, ready[1]);
    close(ready[1]);
    // Odd rounds may kill the child while it opens (and recovers) the store; even rounds
    // time the kill from the end of Open, so that slow fsyncs still leave writes to interrupt;
    // round 0 from the first completed operation, so that `done` below cannot stay 0 on a slow
    // machine. The read end stays open until the child is dead: in an odd round whose Open
    // beat the sleep, the child's write to a closed pipe killed it with SIGPIPE (passing as a
    // crash) before its first operation.
    char byte = 0;
    if (round % 2 == 0) {
      ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child did not open the store";
    }
    if (round == 0) {
      ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child completed no operation";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 60));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    close(ready[0]);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
    ASSERT_EQ(WTERMSIG(wstatus), SIGKILL) << "the child died before the kill";
    const std::optional<LogRecord> pending = ApplyLog(log, &offset, &model, &done);
    auto store = ChunkStore::Open(Env::Default(), dir, {});
    ASSERT_OK(store);
    if ((*store)->recovery().truncated_bytes > 0) ++recovered_tails;
    EXPECT_TRUE((*store)->recovery().dropped.empty());
    Verify(store->get(), ctxs, &model, pending);
    // The store takes new writes after the crash.
    const uint64_t seed = rng() | 1;
    const ChunkMeta m = MetaForSeed(ctxs[0], 8 + round, seed);
    ASSERT_OK((*store)->WriteChunk(m, testing::RandomBytes(m.data_bytes(), seed)));
    model[{ctxs[0], 8 + round}] = seed;
  }
  std::printf("%zu operations completed by children; %zu reopens cut an uncommitted tail\n", done,
              recovered_tails);
  EXPECT_GT(done, 0u);
}

}  // namespace
}  // namespace llms
