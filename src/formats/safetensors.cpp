// Safetensors reader and writer. Layout: uint64 LE header length N, N bytes of JSON
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}},
// then the data; offsets are relative to the first byte after the header.
#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"

namespace dspark {

static_assert(std::endian::native == std::endian::little, "safetensors header length is read by memcpy");

namespace {

using json = nlohmann::json;

// The format's own limit on the header; anything larger is not a safetensors file.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (object, entry, shape); deeper input is hostile.
constexpr int kMaxJsonDepth = 8;
constexpr uint64_t kInt64Max = uint64_t(std::numeric_limits<int64_t>::max());
const char* const kMetadataKey = "__metadata__";

// Bytes per element of the dtypes safetensors defines; 0 when unknown (its size is not checked).
size_t element_bytes(const std::string& dtype) {
  static const std::pair<const char*, size_t> table[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"I64", 8}, {"U64", 8}, {"F64", 8},     {"C64", 8}};
  for (const auto& [name, bytes] : table)
    if (dtype == name) return bytes;
  return 0;
}

std::optional<DType> dtype_from_safetensors(const std::string& dtype) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "F16") return DType::F16;
  if (dtype == "BF16") return DType::BF16;
  return std::nullopt;
}

// Names come from untrusted JSON and may hold newlines: keep messages one line.
std::string printable(const std::string& s) {
  constexpr size_t kMax = 120;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != 0x7f) {
      out += char(c);  // UTF-8 passes through
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

// A JSON value for an error message: hostile headers may hold megabytes in one field.
std::string brief(const json& v) {
  constexpr size_t kMax = 60;
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

// Parses JSON text, turning nlohmann's exceptions into Error and refusing deep nesting and
// keys repeated at the top level (nlohmann would silently keep the last one).
json parse_json(const char* begin, const char* end, const std::string& label, const char* what) {
  std::set<std::string> top_keys;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    const bool opens =
        event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth)
      fail(label, ": ", what, " nests deeper than ", kMaxJsonDepth, " levels");
    if (event == json::parse_event_t::key && depth == 1 && !top_keys.insert(parsed.get<std::string>()).second)
      fail(label, ": ", what, " names '", printable(parsed.get<std::string>()), "' twice");
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::exception& e) {
    fail(label, ": ", what, " is not valid JSON: ", e.what());
  }
}

uint64_t get_unsigned(const json& v, const std::string& where, const char* field) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > kInt64Max)
    fail(where, ": \"", field, "\" must hold non-negative integers, got ", brief(v));
  return v.get<uint64_t>();
}

const json& field(const json& entry, const char* name, const std::string& where) {
  auto it = entry.find(name);
  if (it == entry.end()) fail(where, ": missing \"", name, "\"");
  return *it;
}

std::vector<int64_t> read_shape(const json& entry, const std::string& where) {
  const json& s = field(entry, "shape", where);
  if (!s.is_array()) fail(where, ": \"shape\" must be an array, got ", s.type_name());
  std::vector<int64_t> shape;
  uint64_t product = 1;  // of the nonzero dimensions, so no partial product overflows later
  for (const json& d : s) {
    const uint64_t dim = get_unsigned(d, where, "shape");
    if (dim != 0 && (__builtin_mul_overflow(product, dim, &product) || product > kInt64Max))
      fail(where, ": shape ", brief(s), " has too many elements");
    shape.push_back(int64_t(dim));
  }
  return shape;
}

std::pair<uint64_t, uint64_t> read_offsets(const json& entry, const std::string& where) {
  const json& o = field(entry, "data_offsets", where);
  if (!o.is_array() || o.size() != 2)
    fail(where, ": \"data_offsets\" must be an array [begin, end], got ", brief(o));
  const uint64_t begin = get_unsigned(o[0], where, "data_offsets");
  const uint64_t end = get_unsigned(o[1], where, "data_offsets");
  if (begin > end) fail(where, ": data_offsets [", begin, ", ", end, "] end before they begin");
  return {begin, end};
}

uint64_t numel_of(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);  // checked by read_shape
  return n;
}

SafetensorsEntry read_entry(const std::string& name, const json& entry, const uint8_t* data,
                            uint64_t data_size, const std::string& label) {
  const std::string where = label + ": tensor '" + printable(name) + "'";
  if (!entry.is_object()) fail(where, ": entry must be an object, got ", entry.type_name());
  const json& dtype = field(entry, "dtype", where);
  if (!dtype.is_string()) fail(where, ": \"dtype\" must be a string, got ", brief(dtype));
  SafetensorsEntry e;
  e.dtype = dtype.get<std::string>();
  e.view.name = name;
  e.view.shape = read_shape(entry, where);
  const auto [begin, end] = read_offsets(entry, where);
  if (const size_t elem = element_bytes(e.dtype)) {
    const uint64_t numel = numel_of(e.view.shape);
    uint64_t need = 0;
    if (__builtin_mul_overflow(numel, elem, &need) || need != end - begin)
      fail(where, ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes, but shape ",
           shape_str(e.view.shape), " of ", printable(e.dtype), " needs ", numel, " elements of ", elem,
           " bytes");
  }
  if (end > data_size)
    fail(where, ": data_offsets [", begin, ", ", end, "] end past the end of the data (", data_size,
         " bytes)");
  if (const std::optional<DType> t = dtype_from_safetensors(e.dtype)) {
    e.view.type = *t;
    e.view.data = data + begin;
  }
  return e;
}

std::map<std::string, std::string> read_metadata(const json& m, const std::string& label) {
  if (!m.is_object()) fail(label, ": \"__metadata__\" must be an object, got ", m.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : m.items()) {
    if (!v.is_string())
      fail(label, ": \"__metadata__\" value '", printable(k), "' must be a string, got ", brief(v));
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

// A weight_map file name must stay inside the folder: no absolute paths, no "..".
bool inside_folder(const std::string& file) {
  if (file.empty() || file[0] == '/') return false;
  size_t start = 0;
  while (start <= file.size()) {
    size_t slash = file.find('/', start);
    if (slash == std::string::npos) slash = file.size();
    if (file.compare(start, slash - start, "..") == 0 && slash - start == 2) return false;
    start = slash + 1;
  }
  return true;
}

// tensor name -> shard file name, as listed by model.safetensors.index.json.
std::map<std::string, std::string> read_weight_map(const std::string& index) {
  const std::string text = read_text_file(index);
  const json j = parse_json(text.data(), text.data() + text.size(), index, "index");
  if (!j.is_object()) fail(index, ": index must be a JSON object, got ", j.type_name());
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) fail(index, ": missing \"weight_map\" object");
  std::map<std::string, std::string> out;
  for (const auto& [tensor, file] : wm->items()) {
    if (!file.is_string())
      fail(index, ": weight_map entry '", printable(tensor), "' must be a file name string");
    const std::string f = file.get<std::string>();
    if (!inside_folder(f))
      fail(index, ": weight_map entry '", printable(tensor), "' names '", printable(f),
           "', outside the folder");
    out.emplace(tensor, f);
  }
  return out;
}

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  std::shared_ptr<SafetensorsFile> f = parse(mapped->data(), mapped->size(), path);
  f->file_ = std::move(mapped);
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                                        const std::string& label) {
  if (size < 8)
    fail(label, ": file is too short for a safetensors header (", size, " bytes, need at least 8)");
  uint64_t n = 0;
  std::memcpy(&n, data, 8);
  if (n > kMaxHeaderBytes)
    fail(label, ": header length ", n, " is over the format's limit of ", kMaxHeaderBytes, " bytes");
  if (n > size - 8) fail(label, ": header length ", n, " runs past the end of the file (", size, " bytes)");
  const char* text = reinterpret_cast<const char*>(data + 8);
  const json header = parse_json(text, text + n, label, "header");
  if (!header.is_object()) fail(label, ": header must be a JSON object, got ", header.type_name());

  auto f = std::make_shared<SafetensorsFile>();
  f->label_ = label;
  const uint8_t* base = data + 8 + n;
  const uint64_t data_size = size - 8 - n;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey)
      f->metadata_ = read_metadata(entry, label);
    else
      f->tensors_.emplace(name, read_entry(name, entry, base, data_size, label));
  }
  return f;
}

SafetensorsSet SafetensorsSet::open_folder(const std::string& dir) {
  const std::string index = dir + "/model.safetensors.index.json";
  const std::string single = dir + "/model.safetensors";
  SafetensorsSet set;
  if (!file_exists(index)) {
    if (!file_exists(single)) fail(dir, ": no model.safetensors or model.safetensors.index.json");
    set.files.push_back(SafetensorsFile::open(single));
    set.tensors_ = set.files[0]->tensors();
    return set;
  }
  const std::map<std::string, std::string> weight_map = read_weight_map(index);
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // each file opened once
  for (const auto& [tensor, file] : weight_map) {
    if (shards.count(file)) continue;
    if (!file_exists(dir + "/" + file))
      fail(index, ": shard '", printable(file), "' (listed for tensor '", printable(tensor),
           "') does not exist");
    shards.emplace(file, SafetensorsFile::open(dir + "/" + file));
  }
  // weight_map is the truth, as in transformers: tensors a shard holds but the map omits are ignored.
  for (const auto& [tensor, file] : weight_map) {
    const auto& in_file = shards.at(file)->tensors();
    auto it = in_file.find(tensor);
    if (it == in_file.end())
      fail(index, ": tensor '", printable(tensor), "' is listed for shard '", printable(file),
           "', which does not contain it");
    set.tensors_.emplace(tensor, it->second);
  }
  for (auto& [file, shard] : shards) set.files.push_back(shard);
  return set;
}

const SafetensorsEntry* SafetensorsSet::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

// Larger elements first: with the header padded to 8 bytes every tensor then starts aligned
// to its element size, and the data has no holes (the format forbids them).
std::vector<const TensorView*> write_order(const std::vector<TensorView>& tensors) {
  std::vector<const TensorView*> order;
  for (const TensorView& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
    return dtype_block_bytes(a->type) > dtype_block_bytes(b->type);
  });
  return order;
}

void check_writable(const std::string& path, const TensorView& t, std::set<std::string>& names) {
  // safetensors stores plain elements only: every block-quantized type is refused.
  if (!dtype_from_safetensors(std::string(dtype_name(t.type))))
    fail(path, ": tensor '", t.name, "': safetensors has no ", dtype_name(t.type), " type");
  if (t.name == kMetadataKey || !names.insert(t.name).second)
    fail(path, ": tensor name '", t.name, "' is reserved or used twice");
  for (int64_t d : t.shape)
    if (d < 0) fail(path, ": tensor '", t.name, "' has a negative dimension in ", shape_str(t.shape));
  if (!t.data && t.nbytes() > 0) fail(path, ": tensor '", t.name, "' has no data");
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> names;
  std::string data;
  for (const TensorView* t : write_order(tensors)) {
    check_writable(path, *t, names);
    const uint64_t begin = data.size();
    if (t->nbytes() > 0) data.append(static_cast<const char*>(t->data), t->nbytes());
    header[t->name] = {{"dtype", std::string(dtype_name(t->type))},
                       {"shape", t->shape},
                       {"data_offsets", {begin, uint64_t(data.size())}}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail(path, ": cannot encode the header: ", e.what());
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');  // the format allows trailing spaces
  std::string out;
  put<uint64_t>(out, text.size());
  out += text;
  out += data;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, ": cannot create: ", std::strerror(errno));
  f.write(out.data(), std::streamsize(out.size()));
  f.close();
  if (!f) fail(path, ": cannot write ", out.size(), " bytes");
}

}  // namespace dspark
