// A read-only memory map of a whole file. Weights are used in place where the format allows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dspark {

class MappedFile {
 public:
  // Throws Error naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the pages of [p, p + n) from this process's memory when the range lies inside a live
// MappedFile (they are read again from the file if touched later; the data never changes);
// does nothing for any other memory. Lets a tool that reads a large file once (quantize)
// keep about one tensor of it resident. Returns whether the range was a mapped file's.
bool release_mapped_pages(const void* p, size_t n);

// Reads a whole (small) text file; throws Error naming the path on failure.
std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace dspark
