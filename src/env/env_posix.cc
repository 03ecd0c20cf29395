// The POSIX Env: mmap for reading, write(2)/fsync(2) for writing.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

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
};

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

std::unique_ptr<ReadOnlyRegion> NewMemoryRegion(std::string bytes) {
  return std::make_unique<StringRegion>(std::move(bytes));
}

}  // namespace llms
