// Hugging Face safetensors reader: an 8-byte little-endian header length, a JSON header
// mapping tensor names to {dtype, shape, data_offsets}, then the raw data. Single files and
// sharded folders (model.safetensors.index.json). Every size and offset in the header is
// checked against the file before any tensor is used.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace dspark {

struct SafetensorsEntry {
  std::string dtype;  // as written in the file ("F32", "BF16", ...)
  TensorView view;    // data is null when dtype is not one dspark reads (named in errors)
};

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  static std::shared_ptr<SafetensorsFile> parse(const uint8_t* data, size_t size, const std::string& label);

  const std::string& label() const { return label_; }
  const std::map<std::string, SafetensorsEntry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string label_;
  std::map<std::string, SafetensorsEntry> tensors_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<MappedFile> file_;
};

// All tensors of a Hugging Face folder: model.safetensors, or the shards listed by
// model.safetensors.index.json. Keeps every file mapped.
class SafetensorsSet {
 public:
  static SafetensorsSet open_folder(const std::string& dir);
  const SafetensorsEntry* find(const std::string& name) const;
  const std::map<std::string, SafetensorsEntry>& tensors() const { return tensors_; }
  std::vector<std::shared_ptr<SafetensorsFile>> files;

 private:
  std::map<std::string, SafetensorsEntry> tensors_;
};

// Writes a single safetensors file (tests and tools); tensors copied as given.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dspark
