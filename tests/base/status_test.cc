// Status and StatusOr: codes, messages, the errno mapping, WithContext and the early-return
// macros.
#include "base/status.h"

#include <cerrno>
#include <memory>
#include <string>

#include "testutil/testutil.h"

namespace llms {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  const struct {
    Status status;
    StatusCode code;
    const char* name;
  } cases[] = {
      {Status::NotFound("m"), StatusCode::kNotFound, "NotFound"},
      {Status::Corruption("m"), StatusCode::kCorruption, "Corruption"},
      {Status::InvalidArgument("m"), StatusCode::kInvalidArgument, "InvalidArgument"},
      {Status::IOError("m"), StatusCode::kIOError, "IOError"},
      {Status::ResourceExhausted("m"), StatusCode::kResourceExhausted, "ResourceExhausted"},
      {Status::Unavailable("m"), StatusCode::kUnavailable, "Unavailable"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
    EXPECT_STREQ(StatusCodeName(c.code), c.name);
  }
  EXPECT_STREQ(StatusCodeName(StatusCode::kOk), "OK");
}

TEST(StatusTest, FromErrnoMapsCodes) {
  Status s = Status::FromErrno("open /x/y", ENOENT);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("open /x/y: "), std::string::npos) << s.message();
  EXPECT_GT(s.message().size(), std::string("open /x/y: ").size());  // strerror text follows

  EXPECT_EQ(Status::FromErrno("write f", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Status::FromErrno("write f", EDQUOT).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Status::FromErrno("mmap f", ENOMEM).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Status::FromErrno("read f", EIO).code(), StatusCode::kIOError);
  EXPECT_EQ(Status::FromErrno("open f", EACCES).code(), StatusCode::kIOError);
}

TEST(StatusTest, WithContextPrefixesErrorsOnly) {
  Status s = Status::Corruption("bad magic").WithContext("model.gguf");
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), "model.gguf: bad magic");
  EXPECT_EQ(s.ToString(), "Corruption: model.gguf: bad magic");

  Status ok = Status::Ok().WithContext("model.gguf");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
}

TEST(StatusOrTest, HoldsValueOrStatus) {
  StatusOr<std::string> v(std::string("hello"));
  ASSERT_OK(v);
  EXPECT_EQ(*v, "hello");
  EXPECT_EQ(v->size(), 5u);
  EXPECT_EQ(v.value(), "hello");
  v.value() += "!";
  EXPECT_EQ(*v, "hello!");

  StatusOr<std::string> e(Status::NotFound("no such key"));
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "no such key");
}

TEST(StatusOrTest, MoveOnlyValue) {
  StatusOr<std::unique_ptr<int>> v(std::make_unique<int>(7));
  ASSERT_OK(v);
  std::unique_ptr<int> p = std::move(v).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status CheckPositive(int x) {
  return x > 0 ? Status::Ok() : Status::InvalidArgument("not positive");
}

// Quarter of x through two ASSIGN_OR_RETURNs; *steps counts how far it got.
StatusOr<int> Quarter(int x, int* steps) {
  LLMS_RETURN_IF_ERROR(CheckPositive(x));
  ++*steps;
  LLMS_ASSIGN_OR_RETURN(int h, Half(x));
  ++*steps;
  LLMS_ASSIGN_OR_RETURN(const int q, Half(h));
  ++*steps;
  return q;
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  int steps = 0;
  auto q = Quarter(12, &steps);
  ASSERT_OK(q);
  EXPECT_EQ(*q, 3);
  EXPECT_EQ(steps, 3);

  steps = 0;
  q = Quarter(-4, &steps);
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q.status().message(), "not positive");
  EXPECT_EQ(steps, 0);

  steps = 0;
  q = Quarter(7, &steps);
  EXPECT_EQ(q.status().message(), "odd: 7");
  EXPECT_EQ(steps, 1);

  steps = 0;
  q = Quarter(6, &steps);
  EXPECT_EQ(q.status().message(), "odd: 3");
  EXPECT_EQ(steps, 2);
}

Status AssignMoveOnly(std::unique_ptr<int>* out, bool fail) {
  auto make = [fail]() -> StatusOr<std::unique_ptr<int>> {
    if (fail) return Status::Unavailable("later");
    return std::make_unique<int>(42);
  };
  LLMS_ASSIGN_OR_RETURN(*out, make());
  return Status::Ok();
}

TEST(StatusMacrosTest, AssignOrReturnToExistingMoveOnlyLvalue) {
  std::unique_ptr<int> p;
  ASSERT_OK(AssignMoveOnly(&p, false));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 42);

  std::unique_ptr<int> q;
  Status s = AssignMoveOnly(&q, true);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(q, nullptr);
}

}  // namespace
}  // namespace llms
