// ContextTable: loading sets damaged rows aside (also token ids past the vocabulary), a stored
// chunk counts only while its tokens hash matches the text, and Persist commits text and KV
// length together.
#include "memory/context_table.h"

#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

constexpr size_t kT = 16;
constexpr size_t kVocab = 512;

class ContextTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_.kv_heads = 1;
    layout_.head_dim = 8;
    Reopen();
  }
  void Reopen() {
    table_.reset();
    store_.reset();
    auto store = ChunkStore::Open(Env::Default(), dir_.path(), ChunkStore::Options{});
    ASSERT_OK(store);
    store_ = std::move(store).value();
    table_ = std::make_unique<ContextTable>(
        store_.get(), kT, kVocab, [this] { return std::make_unique<KvCache>(layout_, 2); });
    ASSERT_OK(table_->Load());
  }
  // Stores chunk 0 of `ctx` as a copy of its current text.
  void StoreFirstChunk(Context* ctx) {
    ChunkMeta m = testing::Meta(ctx->id, 0, 2, 128);
    m.valid_tokens = kT;
    m.tokens_hash = table_->ChunkTokensHash(*ctx, 0, kT);
    ASSERT_OK(store_->WriteChunk(m, testing::Payload(m, 1)).status());
  }

  KvLayout layout_;
  testing::TempDir dir_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<ContextTable> table_;
};

TEST_F(ContextTableTest, AStoredChunkCountsOnlyForTheTextItWasWrittenFor) {
  std::vector<int32_t> text(20);
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<int32_t>(i + 1);
  auto ctx = table_->Create("app", text, "native", 0);
  ASSERT_OK(ctx);
  (*ctx)->cache->set_num_tokens(kT);
  ASSERT_OK(table_->Persist(**ctx));
  ASSERT_NO_FATAL_FAILURE(StoreFirstChunk(*ctx));
  const uint64_t id = (*ctx)->id;
  Reopen();
  Context* loaded = table_->FindById(id);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->tokens, text);
  EXPECT_EQ(loaded->cache->num_tokens(), kT);
  EXPECT_TRUE(table_->FlashCopyMatches(*loaded, 0, kT));
  EXPECT_EQ(table_->Info(*loaded).flash_chunks, 1u);
  // The same positions with another text: the stored copy is not this text's.
  text[3] = 99;
  ASSERT_OK(store_->UpdateContext(id, text, kT));
  Reopen();
  loaded = table_->FindById(id);
  EXPECT_FALSE(table_->FlashCopyMatches(*loaded, 0, kT));
  EXPECT_EQ(table_->Info(*loaded).flash_chunks, 0u);
}

TEST_F(ContextTableTest, DamagedRowsAreSetAsideAndOthersLoad) {
  const std::vector<int32_t> good = {1, 2, 3}, outside = {1, 9999};
  const uint64_t a = (*table_->Create("app", good, "native", 0))->id;
  const uint64_t b = *store_->CreateContext("app", outside);  // past the vocabulary
  const uint64_t c = (*table_->Create("app", good, "http", 0))->id;
  store_.reset();
  table_.reset();
  testing::ExecSql(dir_.path() + "/meta.sqlite",
                   "UPDATE contexts SET kv_tokens = 'x' WHERE id = " + std::to_string(c));
  Reopen();
  EXPECT_EQ(table_->FindById(a)->damage, "");
  EXPECT_NE(table_->FindById(b)->damage.find("outside the model's vocabulary"), std::string::npos);
  EXPECT_NE(table_->FindById(c)->damage.find("not an integer"), std::string::npos);
  EXPECT_EQ(ContextTable::CheckUsable(*table_->FindById(b)).code(), StatusCode::kCorruption);
  EXPECT_EQ(table_->Info(*table_->FindById(c)).origin, "http");
  EXPECT_EQ(table_->Find("other", a).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace llms
