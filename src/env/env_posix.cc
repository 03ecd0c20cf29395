// The POSIX Env: mmap for reading, write(2)/fsync(2) for writing, pread/pwrite (optionally
// O_DIRECT) for random access.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "env/env.h"

namespace llms {
namespace {

class MmapRegion final : public ReadOnlyRegion {
 public:
  MmapRegion(void* base, size_t size) : base_(base), size_(size) {}
  ~MmapRegion() override {
    if (base_ != nullptr) munmap(base_, size_);
  }
  std::span<const uint8_t> bytes() const override {
    return {static_cast<const uint8_t*>(base_), size_};
  }

 private:
  void* base_;  // owned mapping, or null for an empty file
  size_t size_;
};

class StringRegion final : public ReadOnlyRegion {
 public:
  explicit StringRegion(std::string bytes) : bytes_(std::move(bytes)) {}
  std::span<const uint8_t> bytes() const override {
    return {reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()};
  }

 private:
  std::string bytes_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) close(fd_);
  }
  Status Append(std::span<const uint8_t> data) override {
    while (!data.empty()) {
      ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("write " + path_, errno);
      }
      data = data.subspan(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (fdatasync(fd_) != 0) return Status::FromErrno("fsync " + path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && close(fd) != 0) return Status::FromErrno("close " + path_, errno);
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
};

Status CheckAligned(const std::string& path, const char* op, uint64_t offset, const void* buf,
                    size_t len) {
  if (IsAligned(offset) && IsAligned(len) && IsAligned(reinterpret_cast<uintptr_t>(buf))) {
    return Status::Ok();
  }
  return Status::InvalidArgument(path + ": direct I/O " + op + " at offset " +
                                 std::to_string(offset) + " of " + std::to_string(len) +
                                 " bytes is not aligned to " + std::to_string(kDirectIoAlignment) +
                                 " (offset, length and buffer address must be)");
}

class PosixRandomRWFile final : public RandomRWFile {
 public:
  // `direct_requested`: the caller asked for O_DIRECT (the alignment contract applies);
  // `direct_active`: the kernel accepted it.
  PosixRandomRWFile(std::string path, int fd, bool direct_requested, bool direct_active)
      : path_(std::move(path)),
        fd_(fd),
        direct_requested_(direct_requested),
        direct_active_(direct_active) {}
  ~PosixRandomRWFile() override { close(fd_); }

  StatusOr<size_t> Read(uint64_t offset, std::span<uint8_t> out) override {
    if (direct_requested_) {
      LLMS_RETURN_IF_ERROR(CheckAligned(path_, "read", offset, out.data(), out.size()));
    }
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = pread(fd_, out.data() + done, out.size() - done, offset + done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(Where("read", offset + done), errno);
      }
      if (n == 0) break;  // end of file
      done += static_cast<size_t>(n);
      // A short O_DIRECT read means end of file; asking again at the unaligned offset that
      // follows would be EINVAL rather than 0.
      if (direct_active_ && !IsAligned(done)) break;
    }
    DropCache(offset, done);
    return done;
  }

  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (direct_requested_) {
      LLMS_RETURN_IF_ERROR(CheckAligned(path_, "write", offset, data.data(), data.size()));
    }
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = pwrite(fd_, data.data() + done, data.size() - done, offset + done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(Where("write", offset + done), errno);
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (fdatasync(fd_) != 0) return Status::FromErrno("fdatasync " + path_, errno);
    DropCache(0, 0);  // length 0: to the end of the file
    return Status::Ok();
  }

  StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return Status::FromErrno("stat " + path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  Status Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return Status::FromErrno(Where("truncate", size), errno);
    }
    return Status::Ok();
  }

  Status PunchHole(uint64_t offset, uint64_t length) override {
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
      return Status::FromErrno(Where("punch a hole", offset), errno);
    }
    return Status::Ok();
  }

  const std::string& path() const override { return path_; }
  bool direct_io_active() const override { return direct_active_; }
  int NativeHandleOrMinusOne() const override { return fd_; }

 private:
  std::string Where(const char* op, uint64_t offset) const {
    return std::string(op) + " " + path_ + " at offset " + std::to_string(offset);
  }
  // The buffered fallback of direct I/O: clean pages are dropped so that "swapped out" bytes do
  // not stay in RAM. Advisory; its failure is harmless and ignored.
  void DropCache(uint64_t offset, uint64_t len) {
    if (direct_requested_ && !direct_active_) {
      (void)posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(len),
                          POSIX_FADV_DONTNEED);
    }
  }

  const std::string path_;
  const int fd_;  // owned
  const bool direct_requested_;
  const bool direct_active_;
};

class PosixEnv final : public Env {
 public:
  StatusOr<std::unique_ptr<ReadOnlyRegion>> MapFile(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open " + path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      Status s = Status::FromErrno("stat " + path, errno);
      close(fd);
      return s;
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      return Status::InvalidArgument(path + " is not a regular file");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void* base = nullptr;
    if (size > 0) {
      base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (base == MAP_FAILED) {
        Status s = Status::FromErrno("mmap " + path, errno);
        close(fd);
        return s;
      }
    }
    close(fd);
    return std::unique_ptr<ReadOnlyRegion>(std::make_unique<MmapRegion>(base, size));
  }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno("create " + path, errno);
    return std::unique_ptr<WritableFile>(std::make_unique<PosixWritableFile>(path, fd));
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (std::rename(from.c_str(), to.c_str()) != 0) {
      return Status::FromErrno("rename " + from + " to " + to, errno);
    }
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    if (unlink(path.c_str()) != 0) return Status::FromErrno("remove " + path, errno);
    return Status::Ok();
  }

  bool FileExists(const std::string& path) override { return access(path.c_str(), F_OK) == 0; }

  StatusOr<std::unique_ptr<RandomRWFile>> OpenRandomRWFile(const std::string& path,
                                                           bool direct_io) override {
    const int flags = O_RDWR | O_CREAT | O_CLOEXEC;
    bool direct_active = false;
    int fd = -1;
    if (direct_io) {
      fd = open(path.c_str(), flags | O_DIRECT, 0644);
      // EINVAL: the file system does not support O_DIRECT; use the buffered fallback.
      if (fd < 0 && errno != EINVAL) return Status::FromErrno("open " + path, errno);
      direct_active = fd >= 0;
    }
    if (fd < 0) fd = open(path.c_str(), flags, 0644);
    if (fd < 0) return Status::FromErrno("open " + path, errno);
    return std::unique_ptr<RandomRWFile>(
        std::make_unique<PosixRandomRWFile>(path, fd, direct_io, direct_active));
  }

  Status CreateDir(const std::string& path) override {
    if (mkdir(path.c_str(), 0755) == 0) return Status::Ok();
    const int err = errno;
    struct stat st;
    if (err == EEXIST && stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::FromErrno("mkdir " + path, err);
  }

  Status SyncDir(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open directory " + path, errno);
    Status s;
    if (fsync(fd) != 0) s = Status::FromErrno("fsync directory " + path, errno);
    close(fd);
    return s;
  }
};

Status NotSupported(const char* what) {
  return Status::Unavailable(std::string(what) + " is not supported by this Env");
}

}  // namespace

void RandomRWFile::ReadMany(std::span<ReadRequest> requests) {
  for (ReadRequest& r : requests) {
    StatusOr<size_t> n = Read(r.offset, r.out);
    r.done = n.ok() ? *n : 0;
    r.status = n.status();
  }
}

StatusOr<std::unique_ptr<RandomRWFile>> Env::OpenRandomRWFile(const std::string&, bool) {
  return NotSupported("OpenRandomRWFile");
}
Status Env::CreateDir(const std::string&) { return NotSupported("CreateDir"); }
Status Env::SyncDir(const std::string&) { return NotSupported("SyncDir"); }

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

std::unique_ptr<ReadOnlyRegion> NewMemoryRegion(std::string bytes) {
  return std::make_unique<StringRegion>(std::move(bytes));
}

}  // namespace llms
