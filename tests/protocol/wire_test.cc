// The native protocol's framing and JSON limits: frames cut out of bytes that arrive in any
// pieces, oversized announcements refused at once, and hostile JSON refused before parsing.
#include "protocol/wire.h"

#include <string>

#include "testutil/testutil.h"

namespace llms {
namespace {

using wire::FrameDecoder;

TEST(FrameDecoderTest, FramesSplitAnywhereComeOutWhole) {
  const std::string a = R"({"type":"hello"})", b = "", c(70000, 'x');
  const std::string stream = wire::EncodeFrame(a) + wire::EncodeFrame(b) + wire::EncodeFrame(c);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{4096}, stream.size()}) {
    FrameDecoder decoder(1 << 20);
    std::vector<std::string> out;
    for (size_t at = 0; at < stream.size(); at += piece) {
      ASSERT_OK(decoder.Append(std::string_view(stream).substr(at, piece)));
      std::string payload;
      while (decoder.Next(&payload)) out.push_back(payload);
    }
    ASSERT_EQ(out.size(), 3u) << "pieces of " << piece;
    EXPECT_EQ(out[0], a);
    EXPECT_EQ(out[1], b);
    EXPECT_EQ(out[2], c);
    EXPECT_FALSE(decoder.mid_frame());
  }
}

TEST(FrameDecoderTest, AnOversizedFrameFailsAtItsHeaderAndStaysFailed) {
  FrameDecoder decoder(1000);
  const std::string ok = wire::EncodeFrame("{}");
  // The oversized header arrives in two pieces after a good frame: the failure comes with the
  // piece that completes it, before any of its payload.
  ASSERT_OK(decoder.Append(ok + std::string("\xe9\x03", 2)));
  Status s = decoder.Append(std::string("\x00\x00", 2));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1001 bytes exceeds the limit of 1000"), std::string::npos);
  std::string payload;
  EXPECT_FALSE(decoder.Next(&payload));
  EXPECT_EQ(decoder.Append("more").code(), StatusCode::kInvalidArgument);
}

TEST(FrameDecoderTest, HoldsOnlyTheBytesThatArrived) {
  FrameDecoder decoder(1 << 20);
  ASSERT_OK(decoder.Append(std::string("\x00\x00\x10\x00{", 5)));  // 1 MiB announced
  EXPECT_TRUE(decoder.mid_frame());
  EXPECT_EQ(decoder.buffered_bytes(), 5u);
}

TEST(ParseJsonTest, DeepNestingAndTooManyValuesAreRefusedBeforeParsing) {
  EXPECT_OK(wire::ParseJson(std::string(32, '[') + std::string(32, ']')));
  auto deep = wire::ParseJson(std::string(1 << 20, '['));
  EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deep.status().message().find("deeper than 32"), std::string::npos);
  std::string many = "[";
  for (int i = 0; i < 70000; ++i) many += "1,";
  many += "1]";
  auto wide = wire::ParseJson(many);
  EXPECT_NE(wide.status().message().find("more than 65536 values"), std::string::npos);
  // Brackets and quotes inside strings do not count.
  EXPECT_OK(wire::ParseJson(R"({"prompt":")" + std::string(1000, '[') + R"(\"]"})"));
  // A prompt of token ids as long as any call allows is fine.
  std::string ids = R"({"type":"call","prompt_tokens":[)";
  for (int i = 0; i < 4096; ++i) ids += std::to_string(i % 500) + (i + 1 < 4096 ? "," : "");
  EXPECT_OK(wire::ParseMessage(ids + "]}"));
  EXPECT_EQ(wire::ParseJson("{bad").status().code(), StatusCode::kInvalidArgument);
}

// A peer's message may hold anything: reading it never throws (the client read an error reply
// with nlohmann's value(), which aborted the app on {"code":1}; found by the wire fuzzer's
// author).
TEST(WireFieldsTest, FieldsOfTheWrongTypeFallBackInsteadOfThrowing) {
  const wire::Json bad = {{"type", "error"}, {"code", 1}, {"message", {1, 2}}, {"id", "seven"}};
  const Status s = wire::StatusFromError(bad);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find("the daemon gave no message"), std::string::npos);
  EXPECT_EQ(wire::UintOr(bad, "id", 3), 3u);
  EXPECT_EQ(wire::StringOr(bad, "type", ""), "error");
  EXPECT_EQ(wire::StringOr(wire::Json::array(), "type", "x"), "x");
  EXPECT_EQ(wire::UintOr(wire::Json{{"id", -1}}, "id", 4), 4u);
}

}  // namespace
}  // namespace llms
