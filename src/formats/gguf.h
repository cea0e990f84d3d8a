// GGUF (version 3, also reads 2) reader and writer. The facts of the format are public
// (ggml's docs/gguf.md); this is an independent implementation.
//
// Reading never trusts the file: every count, length, offset and alignment is checked
// against the file size before use, and a problem throws Error naming the file and what is
// wrong ("model.gguf: tensor 'blk.0.attn_q.weight' data [offset 4096, 8192 bytes) ends past
// the end of the file (6000 bytes)").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/tensor.h"

namespace dspark {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

// One metadata value. Scalars keep their declared type; arrays keep their element type.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT32;
  uint64_t u = 0;                                   // unsigned integer types and BOOL
  int64_t i = 0;                                    // signed integer types
  double f = 0;                                     // FLOAT32 / FLOAT64
  std::string str;                                  // STRING
  GgufValueType elem_type = GgufValueType::UINT32;  // ARRAY
  std::vector<GgufValue> array;                     // ARRAY

  bool is_integer() const;
  bool is_float() const;
};

// ggml's tensor type ids (ggml.h `enum ggml_type`), for mapping and for error messages.
std::string ggml_type_name(uint32_t ggml_type);
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
uint32_t ggml_from_dtype(DType t);

struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;      // relative to the start of the data section
  // Typed view (shape outermost first = ne reversed). Empty data when the type is not
  // supported; supported() tells, and the loader names ggml_type_name() in its error.
  TensorView view;
  bool supported() const { return view.data != nullptr; }
};

class GgufFile {
 public:
  // Maps the file and parses it. The returned object keeps the mapping alive.
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses bytes owned by the caller (kept alive by the caller); `label` names them in errors.
  static std::shared_ptr<GgufFile> parse(const uint8_t* data, size_t size, const std::string& label);

  const std::string& label() const { return label_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed getters: throw Error naming the file and key when it is missing or of the wrong
  // type. Integer getters accept any integer type whose value fits.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // accepts floats and integers
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Same, with a default when the key is absent (a present key of the wrong type still throws).
  uint64_t get_uint_or(const std::string& key, uint64_t def) const;
  double get_float_or(const std::string& key, double def) const;
  std::string get_string_or(const std::string& key, const std::string& def) const;
  bool get_bool_or(const std::string& key, bool def) const;

 private:
  std::string label_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
  std::shared_ptr<MappedFile> file_;  // null when parsing caller-owned bytes
};

// Builds a GGUF file and writes it. Tensors given as bytes are copied at add time; tensors
// given as a source are produced when the file is written, one at a time, so a file larger
// than memory can be written.
class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32);

  void set_string(const std::string& key, const std::string& v);
  void set_uint32(const std::string& key, uint32_t v);
  void set_int32(const std::string& key, int32_t v);
  void set_uint64(const std::string& key, uint64_t v);
  void set_float32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_float_array(const std::string& key, const std::vector<float>& v);
  void set_int32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_value(const std::string& key, const GgufValue& v);  // any type, arrays included

  // `shape` outermost first (as TensorView); bytes must be dtype_row_bytes(type, shape.back()) * rows.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, const void* data);
  void add_tensor(const TensorView& t) { add_tensor(t.name, t.type, t.shape, t.data); }

  // Produces a tensor's bytes on demand: called with an empty string, it must leave exactly
  // the tensor's byte count (as for add_tensor) in it. Called once per serialize() or
  // write(), in tensor order, so it must give the same bytes every time.
  using TensorSource = std::function<void(std::string& out)>;
  void add_tensor_source(const std::string& name, DType type, const std::vector<int64_t>& shape,
                         TensorSource source);

  // The whole file in memory (sources are called).
  std::string serialize() const;
  // Streams the file to `path` tensor by tensor: memory holds one source's tensor at a time.
  // The file appears complete or not at all (written beside it, then renamed). Throws Error
  // naming the path on failure.
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    uint32_t ggml_type;
    std::vector<int64_t> ne;
    uint64_t nbytes;
    std::string bytes;    // when added as bytes
    TensorSource source;  // when added as a source
  };
  // Checks the name and shape and returns the tensor's byte count.
  uint64_t check_new_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape) const;
  std::string header() const;  // everything before the data section, padded to the alignment
  // Calls emit(bytes) for each tensor's data in order; pads are emitted separately.
  void for_each_data(const std::function<void(const std::string&)>& emit) const;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace dspark
