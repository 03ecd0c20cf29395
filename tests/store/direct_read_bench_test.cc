// Direct-I/O read throughput of chunks.dat-like files, printed for the record (no timing
// assertions): blocking pread at queue depth 1, pread from 4 threads (the thread-pool
// alternative), and io_uring at queue depth 4 and 8, for 16 KiB (a layer slice), 64 KiB and
// 1 MiB requests at random aligned offsets. LLMS_BENCH_MIB sets the file size (default 64).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "env/env.h"
#include "store/uring_reader.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using Clock = std::chrono::steady_clock;

struct Setup {
  std::unique_ptr<RandomRWFile> file;
  uint64_t size = 0;
};

uint64_t FileMiB() {
  const char* env = std::getenv("LLMS_BENCH_MIB");
  return env != nullptr ? std::max(8, std::atoi(env)) : 64;
}

// Random non-overlapping request offsets covering the file once.
std::vector<uint64_t> Offsets(uint64_t file_size, uint64_t request, uint32_t seed) {
  std::vector<uint64_t> offsets;
  for (uint64_t o = 0; o + request <= file_size; o += request) offsets.push_back(o);
  std::shuffle(offsets.begin(), offsets.end(), std::mt19937(seed));
  return offsets;
}

double GiBps(uint64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / (1 << 30) / std::chrono::duration<double>(d).count();
}

double ReadPread(RandomRWFile* f, const std::vector<uint64_t>& offsets, uint64_t request,
                 int threads) {
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      AlignedBuffer buf = AlignedBuffer::Allocate(request).value();
      for (size_t i = t; i < offsets.size(); i += threads) {
        auto n = f->Read(offsets[i], buf.span());
        EXPECT_TRUE(n.ok() && *n == request);
      }
    });
  }
  for (std::thread& th : pool) th.join();
  return GiBps(offsets.size() * request, Clock::now() - start);
}

double ReadUring(RandomRWFile* f, const std::vector<uint64_t>& offsets, uint64_t request,
                 unsigned depth) {
  auto ring = UringReader::Create(depth);
  if (!ring.ok()) return 0;
  // Batches of 64 requests, as a restore asks for one layer of many chunks at a time.
  const size_t kBatch = 64;
  std::vector<AlignedBuffer> bufs;
  for (size_t i = 0; i < kBatch; ++i) bufs.push_back(AlignedBuffer::Allocate(request).value());
  const auto start = Clock::now();
  for (size_t b = 0; b < offsets.size(); b += kBatch) {
    std::vector<UringReader::Request> reqs;
    for (size_t i = b; i < std::min(offsets.size(), b + kBatch); ++i) {
      reqs.push_back({offsets[i], bufs[i - b].span(), 0, Status()});
    }
    EXPECT_OK((*ring)->Read(f->NativeHandleOrMinusOne(), f->path().c_str(), reqs));
    for (const auto& r : reqs) EXPECT_TRUE(r.status.ok() && r.done == request);
  }
  return GiBps(offsets.size() * request, Clock::now() - start);
}

TEST(DirectReadBench, PreadVersusIoUring) {
  testing::TempDir dir;
  auto file = Env::Default()->OpenRandomRWFile(dir.File("bench.dat"), /*direct_io=*/true);
  ASSERT_OK(file);
  const uint64_t size = FileMiB() << 20;
  AlignedBuffer block = AlignedBuffer::Allocate(1 << 20).value();
  for (uint64_t o = 0; o < size; o += block.size()) {
    std::memset(block.data(), static_cast<int>(o >> 20), block.size());
    ASSERT_OK((*file)->Write(o, block.span()));
  }
  ASSERT_OK((*file)->Sync());
  std::printf("file %llu MiB in %s, direct I/O %s\n", static_cast<unsigned long long>(size >> 20),
              dir.path().c_str(), (*file)->direct_io_active() ? "on" : "off (fallback)");
  std::printf("%-8s %10s %10s %10s %10s  (GiB/s)\n", "request", "pread", "pread x4", "uring qd4",
              "uring qd8");
  for (uint64_t request : {uint64_t{16} << 10, uint64_t{64} << 10, uint64_t{1} << 20}) {
    const std::vector<uint64_t> offsets = Offsets(size, request, 7);
    const double p1 = ReadPread(file->get(), offsets, request, 1);
    const double p4 = ReadPread(file->get(), offsets, request, 4);
    const double u4 = ReadUring(file->get(), offsets, request, 4);
    const double u8 = ReadUring(file->get(), offsets, request, 8);
    std::printf("%5llu KiB %10.2f %10.2f %10.2f %10.2f\n",
                static_cast<unsigned long long>(request >> 10), p1, p4, u4, u8);
  }
}

}  // namespace
}  // namespace llms
