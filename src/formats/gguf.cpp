// GGUF reader and writer. Layout (little-endian): magic "GGUF", uint32 version, uint64
// tensor count, uint64 metadata count, the metadata key/value pairs, the tensor infos,
// padding to the alignment, then the data section that tensor offsets are relative to.
#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

#include "core/error.h"

namespace dspark {

static_assert(std::endian::native == std::endian::little, "GGUF is read by memcpy: little-endian hosts only");

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
// Arrays of arrays are legal; one level of nesting is all real files use, so deeper ones
// are treated as hostile rather than recursed into.
constexpr int kMaxArrayDepth = 2;
constexpr uint32_t kLastValueType = uint32_t(GgufValueType::FLOAT64);
constexpr uint64_t kInt64Max = uint64_t(std::numeric_limits<int64_t>::max());

bool valid_value_type(uint32_t t) { return t <= kLastValueType; }

const char* value_type_name(GgufValueType t) {
  static const char* const names[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                      "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  return valid_value_type(uint32_t(t)) ? names[uint32_t(t)] : "UNKNOWN";
}

// Bytes of a fixed-size value; 0 for STRING and ARRAY.
size_t scalar_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    default:
      return 0;
  }
}

// The fewest bytes one value of this type takes in the file: bounds an array count by the
// bytes left before anything is allocated.
uint64_t min_value_bytes(GgufValueType t) {
  if (t == GgufValueType::STRING) return 8;     // length
  if (t == GgufValueType::ARRAY) return 4 + 8;  // element type + count
  return scalar_bytes(t);
}

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}

bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}

std::string type_desc(const GgufValue& v) {
  if (v.type != GgufValueType::ARRAY) return value_type_name(v.type);
  return std::string("ARRAY of ") + value_type_name(v.elem_type);
}

// Names read from a hostile file may hold newlines or binary: keep error messages one line.
std::string printable(const std::string& s) {
  constexpr size_t kMax = 120;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

// Reads the file front to back. Every read checks the bytes left first, and every error
// names the file, what was being read and where.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& label)
      : data_(data), size_(size), label_(label) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  void set_context(std::string what) {
    context_ = std::move(what);
    elements_.clear();
  }

  [[noreturn]] void error_at(size_t at, const std::string& problem) const {
    std::string where = context_;
    for (uint64_t e : elements_) where += " [" + std::to_string(e) + "]";
    fail(label_, ": ", where, where.empty() ? "" : ": ", problem, " (at byte ", at, " of ", size_, ")");
  }

  void need(size_t n, const char* what) const {
    if (n > left())
      error_at(pos_, std::string("unexpected end of file reading ") + what + " (need " + std::to_string(n) +
                         " bytes, " + std::to_string(left()) + " left)");
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string() {
    const size_t at = pos_;
    const uint64_t len = read<uint64_t>("string length");
    if (len > left())
      error_at(at, "string length " + std::to_string(len) + " runs past the end of the file (" +
                       std::to_string(left()) + " bytes left)");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

  GgufValueType read_type(const char* what) {
    const size_t at = pos_;
    const uint32_t t = read<uint32_t>(what);
    if (!valid_value_type(t)) error_at(at, "unknown value type " + std::to_string(t));
    return GgufValueType(t);
  }

  // `depth` counts the arrays this value sits in.
  GgufValue read_value(GgufValueType type, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case GgufValueType::UINT8:
        v.u = read<uint8_t>("UINT8");
        break;
      case GgufValueType::INT8:
        v.i = read<int8_t>("INT8");
        break;
      case GgufValueType::UINT16:
        v.u = read<uint16_t>("UINT16");
        break;
      case GgufValueType::INT16:
        v.i = read<int16_t>("INT16");
        break;
      case GgufValueType::UINT32:
        v.u = read<uint32_t>("UINT32");
        break;
      case GgufValueType::INT32:
        v.i = read<int32_t>("INT32");
        break;
      case GgufValueType::UINT64:
        v.u = read<uint64_t>("UINT64");
        break;
      case GgufValueType::INT64:
        v.i = read<int64_t>("INT64");
        break;
      case GgufValueType::FLOAT32:
        v.f = read<float>("FLOAT32");
        break;
      case GgufValueType::FLOAT64:
        v.f = read<double>("FLOAT64");
        break;
      case GgufValueType::BOOL:
        v.u = read_bool();
        break;
      case GgufValueType::STRING:
        v.str = read_string();
        break;
      case GgufValueType::ARRAY:
        read_array(v, depth + 1);
        break;
    }
    return v;
  }

 private:
  uint64_t read_bool() {
    const size_t at = pos_;
    const uint8_t b = read<uint8_t>("BOOL");
    if (b > 1) error_at(at, "bool value " + std::to_string(b) + " is neither 0 nor 1");
    return b;
  }

  void read_array(GgufValue& v, int depth) {
    const size_t at = pos_;
    v.elem_type = read_type("array element type");
    if (v.elem_type == GgufValueType::ARRAY && depth >= kMaxArrayDepth)
      error_at(at, "arrays nested more than " + std::to_string(kMaxArrayDepth) + " levels deep");
    const size_t count_at = pos_;
    const uint64_t count = read<uint64_t>("array count");
    const uint64_t min_bytes = min_value_bytes(v.elem_type);
    if (count > left() / min_bytes)
      error_at(count_at, "array of " + std::to_string(count) + " " + value_type_name(v.elem_type) +
                             " elements (at least " + std::to_string(min_bytes) +
                             " bytes each) runs past the end of the file (" + std::to_string(left()) +
                             " bytes left)");
    v.array.reserve(size_t(count));
    elements_.push_back(0);
    for (uint64_t k = 0; k < count; ++k) {
      elements_.back() = k;
      v.array.push_back(read_value(v.elem_type, depth));
    }
    elements_.pop_back();
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& label_;
  std::string context_;
  std::vector<uint64_t> elements_;  // index path inside (nested) arrays, for messages
};

struct Header {
  uint32_t version;
  uint64_t n_tensors;
  uint64_t n_kv;
};

Header read_header(Reader& r, const uint8_t* data, size_t size) {
  r.set_context("header");
  if (size < 4) r.error_at(0, "file is too short to be GGUF (" + std::to_string(size) + " bytes)");
  if (std::memcmp(data, "GGUF", 4) != 0)
    r.error_at(0, "not a GGUF file (magic '" +
                      printable(std::string(reinterpret_cast<const char*>(data), 4)) + "', expected 'GGUF')");
  r.read<uint32_t>("magic");
  Header h;
  h.version = r.read<uint32_t>("version");
  if (h.version == 1) r.error_at(4, "GGUF version 1 (32-bit counts) is not supported; only versions 2 and 3");
  if ((h.version & 0xffff) == 0 && (h.version >> 16) != 0)
    r.error_at(4, "version field " + std::to_string(h.version) +
                      " looks like a big-endian GGUF, which is not supported (little-endian only)");
  if (h.version != 2 && h.version != 3)
    r.error_at(4, "GGUF version " + std::to_string(h.version) + " is not supported; only versions 2 and 3");
  h.n_tensors = r.read<uint64_t>("tensor count");
  h.n_kv = r.read<uint64_t>("metadata count");
  return h;
}

std::map<std::string, GgufValue> read_metadata(Reader& r, uint64_t n_kv) {
  // A pair takes at least a key length, a value type and one byte of value.
  constexpr uint64_t kMinPair = 8 + 4 + 1;
  if (n_kv > r.left() / kMinPair)
    r.error_at(r.pos(), "metadata count " + std::to_string(n_kv) + " is more than the " +
                            std::to_string(r.left()) + " bytes left can hold");
  std::map<std::string, GgufValue> kv;
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.set_context("metadata key #" + std::to_string(i));
    const size_t at = r.pos();
    std::string key = r.read_string();
    r.set_context("metadata key '" + printable(key) + "'");
    if (kv.count(key)) r.error_at(at, "duplicate key");
    const GgufValueType type = r.read_type("value type");
    kv.emplace(std::move(key), r.read_value(type, 0));
  }
  return kv;
}

uint64_t alignment_from(const std::map<std::string, GgufValue>& kv, const std::string& label) {
  auto it = kv.find("general.alignment");
  if (it == kv.end()) return kDefaultAlignment;
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::UINT32)
    fail(label, ": metadata key 'general.alignment' is ", type_desc(v), ", expected UINT32");
  if (v.u == 0 || (v.u & (v.u - 1)) != 0)
    fail(label, ": metadata key 'general.alignment': ", v.u, " is not a nonzero power of two");
  return v.u;
}

std::vector<GgufTensor> read_tensor_infos(Reader& r, uint64_t n_tensors) {
  // An info takes at least a name length, n_dims, a type and an offset.
  constexpr uint64_t kMinInfo = 8 + 4 + 4 + 8;
  r.set_context("header");
  if (n_tensors > r.left() / kMinInfo)
    r.error_at(r.pos(), "tensor count " + std::to_string(n_tensors) + " is more than the " +
                            std::to_string(r.left()) + " bytes left can hold");
  std::vector<GgufTensor> tensors(static_cast<size_t>(n_tensors));
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor& t = tensors[size_t(i)];
    r.set_context("tensor #" + std::to_string(i));
    const size_t at = r.pos();
    t.name = r.read_string();
    r.set_context("tensor '" + printable(t.name) + "'");
    if (!names.insert(t.name).second) r.error_at(at, "duplicate tensor name");
    const size_t dims_at = r.pos();
    const uint32_t n_dims = r.read<uint32_t>("n_dims");
    if (n_dims > kMaxDims)
      r.error_at(dims_at, "n_dims " + std::to_string(n_dims) + " is more than " + std::to_string(kMaxDims));
    for (uint32_t d = 0; d < n_dims; ++d) {
      const size_t ne_at = r.pos();
      const uint64_t ne = r.read<uint64_t>("dimension");
      if (ne > kInt64Max)
        r.error_at(ne_at,
                   "dimension ne[" + std::to_string(d) + "] = " + std::to_string(ne) + " is too large");
      t.ne.push_back(int64_t(ne));
    }
    t.ggml_type = r.read<uint32_t>("ggml type");
    t.offset = r.read<uint64_t>("data offset");
  }
  return tensors;
}

// Element count, with every partial product checked so later numel() calls cannot overflow:
// zero dimensions are skipped, as a zero further along would not stop an earlier overflow.
uint64_t checked_numel(const GgufTensor& t, const std::string& label) {
  uint64_t n = 1;
  for (int64_t d : t.ne) {
    if (d == 0) continue;
    if (mul_overflows(n, uint64_t(d), &n) || n > kInt64Max)
      fail(label, ": tensor '", printable(t.name), "': shape ", shape_str(t.ne),
           " (ggml order) has too many elements");
  }
  for (int64_t d : t.ne)
    if (d == 0) return 0;
  return n;
}

// Checks one tensor's shape, type and data range and points its view into the data section.
void place_tensor(GgufTensor& t, const uint8_t* data, size_t size, uint64_t data_start, uint64_t alignment,
                  const std::string& label) {
  const std::string where = label + ": tensor '" + printable(t.name) + "'";
  t.view.name = t.name;
  t.view.shape.assign(t.ne.rbegin(), t.ne.rend());
  if (t.offset % alignment != 0)
    fail(where, ": data offset ", t.offset, " is not a multiple of the alignment ", alignment);
  const uint64_t numel = checked_numel(t, label);
  const std::optional<DType> type = dtype_from_ggml(t.ggml_type);
  if (!type) return;  // kept with null data; the loader names the type
  const uint64_t block = uint64_t(dtype_block_elems(*type));
  const uint64_t ne0 = t.ne.empty() ? 1 : uint64_t(t.ne[0]);
  if (ne0 % block != 0)
    fail(where, ": row length ne[0] = ", ne0, " is not a multiple of the ", dtype_name(*type), " block size ",
         block);
  uint64_t nbytes = 0;
  if (mul_overflows(numel / block, dtype_block_bytes(*type), &nbytes))
    fail(where, ": shape ", shape_str(t.view.shape), " is too large");
  if (data_start > size)
    fail(where, ": data section starts at byte ", data_start, ", past the end of the file (", size,
         " bytes)");
  const uint64_t data_size = size - data_start;
  if (t.offset > data_size || nbytes > data_size - t.offset)
    fail(where, ": data [offset ", t.offset, ", ", nbytes, " bytes) ends past the end of the file (", size,
         " bytes, data section starts at byte ", data_start, ")");
  t.view.type = *type;
  t.view.data = data + data_start + t.offset;
}

}  // namespace

bool GgufValue::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }
bool GgufValue::is_float() const { return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }

std::string ggml_type_name(uint32_t ggml_type) {
  // Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml; 31-33 are not file types.
  static const char* const names[] = {
      "F32",     "F16",   "Q4_0",   "Q4_1",  nullptr, nullptr,  "Q5_0",  "Q5_1",    "Q8_0",
      "Q8_1",    "Q2_K",  "Q3_K",   "Q4_K",  "Q5_K",  "Q6_K",   "Q8_K",  "IQ2_XXS", "IQ2_XS",
      "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",    "I16",     "I32",
      "I64",     "F64",   "IQ1_M",  "BF16",  nullptr, nullptr,  nullptr, "TQ1_0",   "TQ2_0"};
  constexpr uint32_t n = sizeof(names) / sizeof(names[0]);
  if (ggml_type < n && names[ggml_type]) return names[ggml_type];
  return "unknown ggml type " + std::to_string(ggml_type);
}

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::F32;
    case 1:
      return DType::F16;
    case 2:
      return DType::Q4_0;
    case 8:
      return DType::Q8_0;
    case 12:
      return DType::Q4_K;
    case 14:
      return DType::Q6_K;
    case 30:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}

uint32_t ggml_from_dtype(DType t) {
  switch (t) {
    case DType::F32:
      return 0;
    case DType::F16:
      return 1;
    case DType::Q8_0:
      return 8;
    case DType::BF16:
      return 30;
    case DType::Q4_0:
      return 2;
    case DType::Q4_K:
      return 12;
    case DType::Q6_K:
      return 14;
  }
  fail("ggml_from_dtype: unknown DType ", int(t));
}

// ---------------------------------------------------------------------------------------------
// Reader

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  std::shared_ptr<GgufFile> f = parse(mapped->data(), mapped->size(), path);
  f->file_ = std::move(mapped);
  return f;
}

std::shared_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& label) {
  auto f = std::make_shared<GgufFile>();
  f->label_ = label;
  Reader r(data, size, label);
  const Header h = read_header(r, data, size);
  f->version_ = h.version;
  f->metadata_ = read_metadata(r, h.n_kv);
  f->alignment_ = alignment_from(f->metadata_, label);
  f->tensors_ = read_tensor_infos(r, h.n_tensors);
  // With no tensors the data section (and the padding before it) may be absent.
  const uint64_t data_start = align_up(r.pos(), f->alignment_);
  for (GgufTensor& t : f->tensors_) place_tensor(t, data, size, data_start, f->alignment_, label);
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

[[noreturn]] void wrong_type(const std::string& label, const std::string& key, const GgufValue& v,
                             const char* expected) {
  fail(label, ": metadata key '", key, "' is ", type_desc(v), ", expected ", expected);
}

const GgufValue& must_find(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) fail(f.label(), ": metadata key '", key, "' is missing");
  return *v;
}

// Integer value as uint64 when it fits; `what` names the array element in messages.
uint64_t as_uint(const GgufValue& v, const std::string& label, const std::string& what) {
  if (is_unsigned_type(v.type)) return v.u;
  if (is_signed_type(v.type) && v.i >= 0) return uint64_t(v.i);
  if (is_signed_type(v.type))
    fail(label, ": metadata ", what, " is ", v.i, ", expected a non-negative integer");
  fail(label, ": metadata ", what, " is ", type_desc(v), ", expected an integer");
}

int64_t as_int(const GgufValue& v, const std::string& label, const std::string& what) {
  if (is_signed_type(v.type)) return v.i;
  if (is_unsigned_type(v.type) && v.u <= kInt64Max) return int64_t(v.u);
  if (is_unsigned_type(v.type)) fail(label, ": metadata ", what, " is ", v.u, ", too large for int64");
  fail(label, ": metadata ", what, " is ", type_desc(v), ", expected an integer");
}

double as_float(const GgufValue& v, const std::string& label, const std::string& what) {
  if (v.is_float()) return v.f;
  if (is_unsigned_type(v.type)) return double(v.u);
  if (is_signed_type(v.type)) return double(v.i);
  fail(label, ": metadata ", what, " is ", type_desc(v), ", expected a number");
}

std::string key_what(const std::string& key) { return "key '" + key + "'"; }
std::string elem_what(const std::string& key, size_t i) {
  return "key '" + key + "' element " + std::to_string(i);
}

const GgufValue& must_be_array(const GgufFile& f, const std::string& key, const char* expected) {
  const GgufValue& v = must_find(f, key);
  if (v.type != GgufValueType::ARRAY) wrong_type(f.label(), key, v, expected);
  return v;
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::STRING) wrong_type(label_, key, v, "STRING");
  return v.str;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  return as_uint(must_find(*this, key), label_, key_what(key));
}

int64_t GgufFile::get_int(const std::string& key) const {
  return as_int(must_find(*this, key), label_, key_what(key));
}

double GgufFile::get_float(const std::string& key) const {
  return as_float(must_find(*this, key), label_, key_what(key));
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = must_find(*this, key);
  if (v.type != GgufValueType::BOOL) wrong_type(label_, key, v, "BOOL");
  return v.u != 0;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = must_be_array(*this, key, "ARRAY of STRING");
  if (v.elem_type != GgufValueType::STRING) wrong_type(label_, key, v, "ARRAY of STRING");
  std::vector<std::string> out;
  out.reserve(v.array.size());
  for (const GgufValue& e : v.array) out.push_back(e.str);
  return out;
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = must_be_array(*this, key, "ARRAY of numbers");
  std::vector<float> out;
  out.reserve(v.array.size());
  for (size_t i = 0; i < v.array.size(); ++i)
    out.push_back(float(as_float(v.array[i], label_, elem_what(key, i))));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = must_be_array(*this, key, "ARRAY of integers");
  std::vector<int64_t> out;
  out.reserve(v.array.size());
  for (size_t i = 0; i < v.array.size(); ++i) out.push_back(as_int(v.array[i], label_, elem_what(key, i)));
  return out;
}

uint64_t GgufFile::get_uint_or(const std::string& key, uint64_t def) const {
  return find(key) ? get_uint(key) : def;
}

double GgufFile::get_float_or(const std::string& key, double def) const {
  return find(key) ? get_float(key) : def;
}

std::string GgufFile::get_string_or(const std::string& key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}

bool GgufFile::get_bool_or(const std::string& key, bool def) const { return find(key) ? get_bool(key) : def; }

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

bool fits(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      return v.u <= 0xff;
    case GgufValueType::UINT16:
      return v.u <= 0xffff;
    case GgufValueType::UINT32:
      return v.u <= 0xffffffffu;
    case GgufValueType::BOOL:
      return v.u <= 1;
    case GgufValueType::INT8:
      return v.i >= -128 && v.i <= 127;
    case GgufValueType::INT16:
      return v.i >= -32768 && v.i <= 32767;
    case GgufValueType::INT32:
      return v.i >= std::numeric_limits<int32_t>::min() && v.i <= std::numeric_limits<int32_t>::max();
    default:
      return true;
  }
}

// Refuses values the reader would reject, so a writer bug shows at set time, not at load.
void check_value(const std::string& key, const GgufValue& v, int depth) {
  if (!valid_value_type(uint32_t(v.type)))
    fail("GgufWriter: key '", key, "': unknown value type ", uint32_t(v.type));
  if (!fits(v)) fail("GgufWriter: key '", key, "': value does not fit ", value_type_name(v.type));
  if (v.type != GgufValueType::ARRAY) return;
  if (!valid_value_type(uint32_t(v.elem_type)))
    fail("GgufWriter: key '", key, "': unknown array element type ", uint32_t(v.elem_type));
  if (v.elem_type == GgufValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
    fail("GgufWriter: key '", key, "': arrays nested more than ", kMaxArrayDepth, " levels deep");
  for (const GgufValue& e : v.array) {
    if (e.type != v.elem_type)
      fail("GgufWriter: key '", key, "': array of ", value_type_name(v.elem_type), " holds a ",
           value_type_name(e.type));
    check_value(key, e, depth + 1);
  }
}

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_payload(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      put<uint8_t>(out, uint8_t(v.u));
      break;
    case GgufValueType::INT8:
      put<int8_t>(out, int8_t(v.i));
      break;
    case GgufValueType::UINT16:
      put<uint16_t>(out, uint16_t(v.u));
      break;
    case GgufValueType::INT16:
      put<int16_t>(out, int16_t(v.i));
      break;
    case GgufValueType::UINT32:
      put<uint32_t>(out, uint32_t(v.u));
      break;
    case GgufValueType::INT32:
      put<int32_t>(out, int32_t(v.i));
      break;
    case GgufValueType::UINT64:
      put<uint64_t>(out, v.u);
      break;
    case GgufValueType::INT64:
      put<int64_t>(out, v.i);
      break;
    case GgufValueType::FLOAT32:
      put<float>(out, float(v.f));
      break;
    case GgufValueType::FLOAT64:
      put<double>(out, v.f);
      break;
    case GgufValueType::BOOL:
      put<uint8_t>(out, uint8_t(v.u));
      break;
    case GgufValueType::STRING:
      put_string(out, v.str);
      break;
    case GgufValueType::ARRAY:
      put<uint32_t>(out, uint32_t(v.elem_type));
      put<uint64_t>(out, v.array.size());
      for (const GgufValue& e : v.array) put_payload(out, e);
      break;
  }
}

void pad_to(std::string& out, uint64_t alignment) {
  out.resize(size_t(align_up(out.size(), alignment)), '\0');
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

template <class T, class Set>
GgufValue array_of(GgufValueType elem, const std::vector<T>& xs, Set set) {
  GgufValue v = scalar(GgufValueType::ARRAY);
  v.elem_type = elem;
  v.array.reserve(xs.size());
  for (const T& x : xs) {
    GgufValue e = scalar(elem);
    set(e, x);
    v.array.push_back(std::move(e));
  }
  return v;
}

}  // namespace

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 0xffffffffu)
    fail("GgufWriter: alignment ", alignment, " is not a nonzero power of two that fits UINT32");
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  GgufValue x = scalar(GgufValueType::STRING);
  x.str = v;
  set_value(key, x);
}

void GgufWriter::set_uint32(const std::string& key, uint32_t v) {
  GgufValue x = scalar(GgufValueType::UINT32);
  x.u = v;
  set_value(key, x);
}

void GgufWriter::set_int32(const std::string& key, int32_t v) {
  GgufValue x = scalar(GgufValueType::INT32);
  x.i = v;
  set_value(key, x);
}

void GgufWriter::set_uint64(const std::string& key, uint64_t v) {
  GgufValue x = scalar(GgufValueType::UINT64);
  x.u = v;
  set_value(key, x);
}

void GgufWriter::set_float32(const std::string& key, float v) {
  GgufValue x = scalar(GgufValueType::FLOAT32);
  x.f = v;
  set_value(key, x);
}

void GgufWriter::set_bool(const std::string& key, bool v) {
  GgufValue x = scalar(GgufValueType::BOOL);
  x.u = v ? 1 : 0;
  set_value(key, x);
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  set_value(key, array_of(GgufValueType::STRING, v, [](GgufValue& e, const std::string& s) { e.str = s; }));
}

void GgufWriter::set_float_array(const std::string& key, const std::vector<float>& v) {
  set_value(key, array_of(GgufValueType::FLOAT32, v, [](GgufValue& e, float x) { e.f = x; }));
}

void GgufWriter::set_int32_array(const std::string& key, const std::vector<int32_t>& v) {
  set_value(key, array_of(GgufValueType::INT32, v, [](GgufValue& e, int32_t x) { e.i = x; }));
}

// Setting a key again replaces its value in place: a file never holds a key twice.
void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
  check_value(key, v, 0);
  if (key == "general.alignment" && (v.type != GgufValueType::UINT32 || v.u != alignment_))
    fail("GgufWriter: general.alignment must be the UINT32 ", alignment_, " given to the constructor");
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = v;
      return;
    }
  }
  kv_.emplace_back(key, v);
}

uint64_t GgufWriter::check_new_tensor(const std::string& name, DType type,
                                      const std::vector<int64_t>& shape) const {
  for (const Pending& p : tensors_)
    if (p.name == name) fail("GgufWriter: tensor '", name, "' added twice");
  if (shape.size() > kMaxDims)
    fail("GgufWriter: tensor '", name, "' has more than ", kMaxDims, " dimensions");
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || mul_overflows(numel, uint64_t(d), &numel) || numel > kInt64Max)
      fail("GgufWriter: tensor '", name, "' has a bad shape ", shape_str(shape));
  }
  const int64_t cols = shape.empty() ? 1 : shape.back();
  if (cols % dtype_block_elems(type) != 0)
    fail("GgufWriter: tensor '", name, "': row length ", cols, " is not a multiple of the ", dtype_name(type),
         " block size");
  return numel / uint64_t(dtype_block_elems(type)) * dtype_block_bytes(type);
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape,
                            const void* data) {
  const uint64_t nbytes = check_new_tensor(name, type, shape);
  if (nbytes > 0 && !data) fail("GgufWriter: tensor '", name, "' has no data");
  Pending p;
  p.name = name;
  p.ggml_type = ggml_from_dtype(type);
  p.ne.assign(shape.rbegin(), shape.rend());
  p.nbytes = nbytes;
  if (nbytes > 0) p.bytes.assign(static_cast<const char*>(data), size_t(nbytes));
  tensors_.push_back(std::move(p));
}

void GgufWriter::add_tensor_source(const std::string& name, DType type, const std::vector<int64_t>& shape,
                                   TensorSource source) {
  const uint64_t nbytes = check_new_tensor(name, type, shape);
  if (!source) fail("GgufWriter: tensor '", name, "' has no source");
  Pending p;
  p.name = name;
  p.ggml_type = ggml_from_dtype(type);
  p.ne.assign(shape.rbegin(), shape.rend());
  p.nbytes = nbytes;
  p.source = std::move(source);
  tensors_.push_back(std::move(p));
}

std::string GgufWriter::header() const {
  std::vector<std::pair<std::string, GgufValue>> kv = kv_;
  const bool has_alignment_key =
      std::any_of(kv.begin(), kv.end(), [](const auto& p) { return p.first == "general.alignment"; });
  if (alignment_ != kDefaultAlignment && !has_alignment_key) {
    GgufValue a = scalar(GgufValueType::UINT32);
    a.u = alignment_;
    kv.emplace_back("general.alignment", a);
  }
  std::string out;
  out.append("GGUF", 4);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv.size());
  for (const auto& [key, v] : kv) {
    put_string(out, key);
    put<uint32_t>(out, uint32_t(v.type));
    put_payload(out, v);
  }
  uint64_t offset = 0;
  for (const Pending& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(out, uint64_t(d));
    put<uint32_t>(out, t.ggml_type);
    put<uint64_t>(out, offset);
    offset = align_up(offset + t.nbytes, alignment_);
  }
  pad_to(out, alignment_);
  return out;
}

void GgufWriter::for_each_data(const std::function<void(const std::string&)>& emit) const {
  std::string produced;
  // The data section starts aligned, so padding each tensor's end keeps offsets and file
  // positions in step.
  const std::string pad(size_t(alignment_), '\0');
  for (const Pending& t : tensors_) {
    const std::string* bytes = &t.bytes;
    if (t.source) {
      produced.clear();
      t.source(produced);
      if (produced.size() != t.nbytes)
        fail("GgufWriter: tensor '", t.name, "': its source produced ", produced.size(), " bytes, expected ",
             t.nbytes);
      bytes = &produced;
    }
    emit(*bytes);
    const uint64_t tail = align_up(t.nbytes, alignment_) - t.nbytes;
    if (tail > 0) emit(pad.substr(0, size_t(tail)));
  }
}

std::string GgufWriter::serialize() const {
  std::string out = header();
  for_each_data([&](const std::string& bytes) { out += bytes; });
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::string tmp = path + ".partial";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, ": cannot create: ", std::strerror(errno));
  uint64_t written = 0;
  auto put_bytes = [&](const std::string& bytes) {
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) fail(path, ": cannot write ", bytes.size(), " bytes at byte ", written);
    written += bytes.size();
  };
  try {
    put_bytes(header());
    for_each_data(put_bytes);
    out.close();
    if (!out) fail(path, ": cannot write ", written, " bytes");
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) fail(path, ": cannot rename ", tmp, " to it: ", ec.message());
  } catch (...) {
    out.close();
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace dspark
