// Memory-mapped files: releasing pages of a mapping keeps its contents; other memory is left alone.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "test_util.h"

namespace dspark {
namespace {

TEST(MappedFile, ReleasedPagesReadBackTheSame) {
  std::string bytes(3 * 65536 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 131 % 251);
  const std::string path = test::temp_dir() + "/data.bin";
  test::write_file(path, bytes);
  auto f = MappedFile::open(path);
  ASSERT_EQ(f->size(), bytes.size());
  ASSERT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);
  EXPECT_TRUE(release_mapped_pages(f->data() + 100, 2 * 65536));  // a range not on page bounds
  EXPECT_TRUE(release_mapped_pages(f->data(), f->size()));        // the whole file
  EXPECT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);
  // Past the end of the mapping: not the file's, nothing done.
  EXPECT_FALSE(release_mapped_pages(f->data() + 10, f->size()));
}

TEST(MappedFile, OtherMemoryIsNotReleased) {
  std::vector<uint8_t> heap(1 << 20, 7);
  EXPECT_FALSE(release_mapped_pages(heap.data(), heap.size()));
  for (uint8_t b : heap) ASSERT_EQ(b, 7);
  const std::string path = test::temp_dir() + "/gone.bin";
  test::write_file(path, std::string(8192, 'x'));
  const uint8_t* where = nullptr;
  {
    auto f = MappedFile::open(path);
    where = f->data();
  }
  EXPECT_FALSE(release_mapped_pages(where, 16));  // unmapped once the file is closed
}

}  // namespace
}  // namespace dspark
