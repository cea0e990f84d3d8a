// GGUF reader and writer: round trips through the writer, and hostile inputs that must
// each end in one clear Error (never a crash, an overread or a hang).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

const char* const kLabel = "x.gguf";

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Parses from a heap copy of exactly the given size, so AddressSanitizer sees any overread.
std::shared_ptr<GgufFile> parse_bytes(const std::string& bytes, const std::string& label = kLabel) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  auto f = GgufFile::parse(copy.data(), copy.size(), label);
  return f;
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { parse_bytes(bytes); });
}

// Hand-built files, for the inputs the writer refuses to produce.
struct Raw {
  std::string s;
  Raw& u8(uint8_t v) { return put(v); }
  Raw& u32(uint32_t v) { return put(v); }
  Raw& u64(uint64_t v) { return put(v); }
  Raw& str(const std::string& v) {
    u64(v.size());
    s += v;
    return *this;
  }
  Raw& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    s += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& kv_u32(const std::string& key, uint32_t v) {
    return str(key).u32(uint32_t(GgufValueType::UINT32)).u32(v);
  }
  Raw& tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Raw& pad(size_t alignment) {
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
  Raw& zeros(size_t n) {
    s.append(n, '\0');
    return *this;
  }
  template <class T>
  Raw& put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
    return *this;
  }
};

GgufValue make(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}
GgufValue make_u(GgufValueType t, uint64_t u) {
  GgufValue v = make(t);
  v.u = u;
  return v;
}
GgufValue make_i(GgufValueType t, int64_t i) {
  GgufValue v = make(t);
  v.i = i;
  return v;
}
GgufValue make_f(GgufValueType t, double f) {
  GgufValue v = make(t);
  v.f = f;
  return v;
}
GgufValue make_s(const std::string& s) {
  GgufValue v = make(GgufValueType::STRING);
  v.str = s;
  return v;
}
GgufValue make_array(GgufValueType elem, std::vector<GgufValue> xs) {
  GgufValue v = make(GgufValueType::ARRAY);
  v.elem_type = elem;
  v.array = std::move(xs);
  return v;
}

void expect_same(const GgufValue& a, const GgufValue& b, const std::string& key) {
  SCOPED_TRACE(key);
  ASSERT_EQ(a.type, b.type);
  EXPECT_EQ(a.u, b.u);
  EXPECT_EQ(a.i, b.i);
  EXPECT_EQ(a.f, b.f);
  EXPECT_EQ(a.str, b.str);
  if (a.type != GgufValueType::ARRAY) return;
  ASSERT_EQ(a.elem_type, b.elem_type);
  ASSERT_EQ(a.array.size(), b.array.size());
  for (size_t i = 0; i < a.array.size(); ++i)
    expect_same(a.array[i], b.array[i], key + "[" + std::to_string(i) + "]");
}

// Every value type, scalars and arrays, including arrays of strings and of arrays.
std::vector<std::pair<std::string, GgufValue>> all_values() {
  using T = GgufValueType;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"t.u8", make_u(T::UINT8, 200)},
      {"t.i8", make_i(T::INT8, -100)},
      {"t.u16", make_u(T::UINT16, 60000)},
      {"t.i16", make_i(T::INT16, -30000)},
      {"t.u32", make_u(T::UINT32, 4000000000u)},
      {"t.i32", make_i(T::INT32, -2000000000)},
      {"t.f32", make_f(T::FLOAT32, 0.15625)},
      {"t.bool", make_u(T::BOOL, 1)},
      {"t.str", make_s("héllo wörld")},
      {"t.empty_str", make_s("")},
      {"t.u64", make_u(T::UINT64, 0xfedcba9876543210ull)},
      {"t.i64", make_i(T::INT64, std::numeric_limits<int64_t>::min())},
      {"t.f64", make_f(T::FLOAT64, 3.141592653589793)},
      {"t.arr_str", make_array(T::STRING, {make_s("a"), make_s(""), make_s("<|end|>")})},
      {"t.arr_u8", make_array(T::UINT8, {make_u(T::UINT8, 0), make_u(T::UINT8, 255)})},
      {"t.arr_i8", make_array(T::INT8, {make_i(T::INT8, -128)})},
      {"t.arr_u16", make_array(T::UINT16, {make_u(T::UINT16, 1)})},
      {"t.arr_i16", make_array(T::INT16, {make_i(T::INT16, -2)})},
      {"t.arr_u32", make_array(T::UINT32, {make_u(T::UINT32, 3)})},
      {"t.arr_i32", make_array(T::INT32, {make_i(T::INT32, -4), make_i(T::INT32, 5)})},
      {"t.arr_u64", make_array(T::UINT64, {make_u(T::UINT64, 6)})},
      {"t.arr_i64", make_array(T::INT64, {make_i(T::INT64, -7)})},
      {"t.arr_f32", make_array(T::FLOAT32, {make_f(T::FLOAT32, 0.5), make_f(T::FLOAT32, -1.25)})},
      {"t.arr_f64", make_array(T::FLOAT64, {make_f(T::FLOAT64, 1e300)})},
      {"t.arr_bool", make_array(T::BOOL, {make_u(T::BOOL, 0), make_u(T::BOOL, 1)})},
      {"t.arr_empty", make_array(T::UINT32, {})},
      {"t.arr_nested",
       make_array(T::ARRAY, {make_array(T::INT32, {make_i(T::INT32, 1), make_i(T::INT32, 2)}),
                             make_array(T::STRING, {make_s("x")}), make_array(T::FLOAT32, {})})},
  };
  return kv;
}

TEST(Gguf, RoundTripsEveryMetadataType) {
  GgufWriter w;
  const auto kv = all_values();
  for (const auto& [key, v] : kv) w.set_value(key, v);
  auto f = parse_bytes(w.serialize());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_TRUE(f->tensors().empty());
  ASSERT_EQ(f->metadata().size(), kv.size());
  for (const auto& [key, v] : kv) {
    const GgufValue* got = f->find(key);
    ASSERT_NE(got, nullptr) << key;
    expect_same(v, *got, key);
  }
  EXPECT_EQ(f->find("t.missing"), nullptr);
}

TEST(Gguf, TypedSettersAndGetters) {
  GgufWriter w;
  w.set_string("s", "text");
  w.set_uint32("u32", 7);
  w.set_int32("i32", -3);
  w.set_int32("i32pos", 9);
  w.set_uint64("u64", uint64_t(1) << 40);
  w.set_float32("f", 0.25f);
  w.set_bool("b", true);
  w.set_string_array("sa", {"x", "yy", ""});
  w.set_float_array("fa", {1.5f, -2.0f});
  w.set_int32_array("ia", {-1, 0, 1});
  w.set_uint32("u32", 8);  // a second set replaces the first
  auto f = parse_bytes(w.serialize());
  EXPECT_EQ(f->metadata().size(), 10u);
  EXPECT_EQ(f->get_string("s"), "text");
  EXPECT_EQ(f->get_uint("u32"), 8u);
  EXPECT_EQ(f->get_uint("i32pos"), 9u);
  EXPECT_EQ(f->get_int("i32"), -3);
  EXPECT_EQ(f->get_int("u32"), 8);
  EXPECT_EQ(f->get_uint("u64"), uint64_t(1) << 40);
  EXPECT_EQ(f->get_float("f"), 0.25);
  EXPECT_EQ(f->get_float("i32"), -3.0);
  EXPECT_TRUE(f->get_bool("b"));
  EXPECT_EQ(f->get_string_array("sa"), (std::vector<std::string>{"x", "yy", ""}));
  EXPECT_EQ(f->get_float_array("fa"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f->get_float_array("ia"), (std::vector<float>{-1.0f, 0.0f, 1.0f}));
  EXPECT_EQ(f->get_int_array("ia"), (std::vector<int64_t>{-1, 0, 1}));
  EXPECT_EQ(f->get_uint_or("absent", 5), 5u);
  EXPECT_EQ(f->get_uint_or("u32", 5), 8u);
  EXPECT_EQ(f->get_float_or("absent", 1.5), 1.5);
  EXPECT_EQ(f->get_string_or("absent", "d"), "d");
  EXPECT_EQ(f->get_string_or("s", "d"), "text");
  EXPECT_FALSE(f->get_bool_or("absent", false));

  EXPECT_THAT(error_of([&] { f->get_string("absent"); }),
              HasSubstr("x.gguf: metadata key 'absent' is missing"));
  EXPECT_THAT(error_of([&] { f->get_string("u32"); }),
              HasSubstr("x.gguf: metadata key 'u32' is UINT32, expected STRING"));
  EXPECT_THAT(error_of([&] { f->get_uint("i32"); }),
              HasSubstr("'i32' is -3, expected a non-negative integer"));
  EXPECT_THAT(error_of([&] { f->get_uint("s"); }), HasSubstr("'s' is STRING, expected an integer"));
  EXPECT_THAT(error_of([&] { f->get_int("f"); }), HasSubstr("'f' is FLOAT32, expected an integer"));
  EXPECT_THAT(error_of([&] { f->get_bool("u32"); }), HasSubstr("expected BOOL"));
  EXPECT_THAT(error_of([&] { f->get_string_array("fa"); }),
              HasSubstr("'fa' is ARRAY of FLOAT32, expected ARRAY of STRING"));
  EXPECT_THAT(error_of([&] { f->get_int_array("fa"); }), HasSubstr("'fa' element 0 is FLOAT32"));
  EXPECT_THAT(error_of([&] { f->get_uint_or("s", 1); }), HasSubstr("expected an integer"));
}

// Distinct, recognisable bytes for each tensor.
std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 7);
  return v;
}

struct TestTensor {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<TestTensor> test_tensors() {
  return {
      {"w.f32", DType::F32, {2, 3}, pattern(2 * 3 * 4, 1)},
      {"w.f16", DType::F16, {5}, pattern(5 * 2, 2)},
      {"w.bf16", DType::BF16, {3, 1, 2}, pattern(3 * 2 * 2, 3)},
      {"w.q8_0", DType::Q8_0, {2, 64}, pattern(2 * 2 * sizeof(BlockQ8_0), 4)},
      {"w.empty", DType::F32, {0, 4}, {}},
  };
}

std::string file_with_tensors(uint64_t alignment) {
  GgufWriter w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
  for (const TestTensor& t : test_tensors()) w.add_tensor(t.name, t.type, t.shape, t.bytes.data());
  return w.serialize();
}

void check_tensors(const std::string& bytes, uint64_t alignment) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  auto f = GgufFile::parse(copy.data(), copy.size(), kLabel);
  EXPECT_EQ(f->alignment(), alignment);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  const auto expected = test_tensors();
  ASSERT_EQ(f->tensors().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const TestTensor& e = expected[i];
    const GgufTensor& t = f->tensors()[i];
    SCOPED_TRACE(e.name);
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(f->find_tensor(e.name), &t);
    EXPECT_EQ(t.ggml_type, ggml_from_dtype(e.type));
    EXPECT_EQ(t.ne, std::vector<int64_t>(e.shape.rbegin(), e.shape.rend()));
    EXPECT_EQ(t.offset % alignment, 0u);
    ASSERT_TRUE(t.supported());
    EXPECT_EQ(t.view.name, e.name);
    EXPECT_EQ(t.view.type, e.type);
    EXPECT_EQ(t.view.shape, e.shape);
    ASSERT_EQ(t.view.nbytes(), e.bytes.size());
    const size_t at = size_t(static_cast<const uint8_t*>(t.view.data) - copy.data());
    EXPECT_EQ(at % alignment, 0u);  // data section and offsets are both aligned
    EXPECT_EQ(std::vector<uint8_t>(copy.begin() + at, copy.begin() + at + e.bytes.size()), e.bytes);
  }
  EXPECT_EQ(f->find_tensor("absent"), nullptr);
  EXPECT_EQ(copy.size() % alignment, 0u);
}

TEST(Gguf, RoundTripsTensorsOfEverySupportedType) { check_tensors(file_with_tensors(32), 32); }

TEST(Gguf, RoundTripsWithNonDefaultAlignment) {
  const std::string bytes = file_with_tensors(64);
  check_tensors(bytes, 64);
  auto f = parse_bytes(bytes);
  EXPECT_EQ(f->get_uint("general.alignment"), 64u);
  EXPECT_EQ(f->find("general.alignment")->type, GgufValueType::UINT32);
  check_tensors(file_with_tensors(1), 1);
}

TEST(Gguf, OpensAFileAndKeepsItMapped) {
  const std::string path = test::temp_dir() + "/m.gguf";
  GgufWriter w;
  const float values[4] = {1, 2, 3, 4};
  w.add_tensor("v", DType::F32, {4}, values);
  w.write(path);
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->label(), path);
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(std::memcmp(f->tensors()[0].view.data, values, sizeof values), 0);
  EXPECT_THAT(error_of([&] { GgufFile::open(path + ".absent"); }), HasSubstr(path + ".absent"));
}

TEST(Gguf, WriterRefusesWhatTheReaderWouldReject) {
  EXPECT_THAT(error_of([] { GgufWriter w(3); }), HasSubstr("alignment 3"));
  GgufWriter w;
  const uint8_t buf[64] = {};
  EXPECT_THAT(error_of([&] { w.add_tensor("q", DType::Q8_0, {1, 16}, buf); }), HasSubstr("block size"));
  w.add_tensor("a", DType::F32, {2}, buf);
  EXPECT_THAT(error_of([&] { w.add_tensor("a", DType::F32, {2}, buf); }), HasSubstr("'a' added twice"));
  GgufValue bad = make_array(GgufValueType::INT32, {make_s("x")});
  EXPECT_THAT(error_of([&] { w.set_value("k", bad); }), HasSubstr("array of INT32 holds a STRING"));
  GgufValue deep = make_array(GgufValueType::ARRAY, {make_array(GgufValueType::ARRAY, {})});
  EXPECT_THAT(error_of([&] { w.set_value("k", deep); }), HasSubstr("nested"));
  EXPECT_THAT(error_of([&] { w.set_uint32("general.alignment", 64); }), HasSubstr("general.alignment"));
}

TEST(Gguf, EveryTruncationIsAnError) {
  const std::string bytes = file_with_tensors(32);
  ASSERT_NO_THROW(parse_bytes(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string msg = parse_error(bytes.substr(0, n));
    EXPECT_THAT(msg, HasSubstr("x.gguf: ")) << "prefix " << n;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(Gguf, TruncationMessagesNameThePlace) {
  const std::string bytes = file_with_tensors(32);
  EXPECT_THAT(parse_error(bytes.substr(0, 2)),
              HasSubstr("x.gguf: header: file is too short to be GGUF (2 bytes)"));
  EXPECT_THAT(parse_error(bytes.substr(0, 10)),
              HasSubstr("header: unexpected end of file reading tensor count (need 8 bytes, 2 left)"));
  // Cut inside the architecture string: its length is fine, the bytes are missing.
  const size_t cut = bytes.find("llama") + 2;
  EXPECT_THAT(
      parse_error(bytes.substr(0, cut)),
      HasSubstr("metadata key 'general.architecture': string length 5 runs past the end of the file"));
  // Cut in the data section.
  EXPECT_THAT(parse_error(bytes.substr(0, bytes.size() - 40)), HasSubstr("ends past the end of the file"));
}

TEST(Gguf, BadMagic) {
  std::string bytes = file_with_tensors(32);
  bytes[0] = 'X';
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.gguf: header: not a GGUF file (magic 'XGUF', expected 'GGUF')"));
  bytes[0] = '\n';
  EXPECT_THAT(parse_error(bytes), HasSubstr("magic '\\x0aGUF'"));
}

TEST(Gguf, BadVersion) {
  EXPECT_THAT(parse_error(Raw().header(1, 0, 0).s),
              HasSubstr("x.gguf: header: GGUF version 1 (32-bit counts)"));
  EXPECT_THAT(parse_error(Raw().header(4, 0, 0).s), HasSubstr("GGUF version 4 is not supported"));
  EXPECT_THAT(parse_error(Raw().header(0x03000000, 0, 0).s), HasSubstr("big-endian"));
}

TEST(Gguf, ReadsVersion2) {
  std::string bytes = Raw().header(2, 0, 1).kv_u32("a", 5).s;
  auto f = parse_bytes(bytes);
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->get_uint("a"), 5u);
}

TEST(Gguf, HugeCountsAreRefusedBeforeAllocating) {
  EXPECT_THAT(
      parse_error(Raw().header(3, 0, uint64_t(1) << 60).s),
      HasSubstr("x.gguf: header: metadata count 1152921504606846976 is more than the 0 bytes left can hold"));
  EXPECT_THAT(parse_error(Raw().header(3, uint64_t(-1), 0).s),
              HasSubstr("tensor count 18446744073709551615 is more than"));
  const std::string huge_array = Raw()
                                     .header(3, 0, 1)
                                     .str("arr")
                                     .u32(uint32_t(GgufValueType::ARRAY))
                                     .u32(uint32_t(GgufValueType::UINT32))
                                     .u64(uint64_t(1) << 60)
                                     .zeros(16)
                                     .s;
  EXPECT_THAT(parse_error(huge_array),
              HasSubstr("metadata key 'arr': array of 1152921504606846976 UINT32 elements "
                        "(at least 4 bytes each) runs past the end of the file"));
  const std::string huge_strings = Raw()
                                       .header(3, 0, 1)
                                       .str("arr")
                                       .u32(uint32_t(GgufValueType::ARRAY))
                                       .u32(uint32_t(GgufValueType::STRING))
                                       .u64(2)
                                       .str("ok")
                                       .u64(uint64_t(1) << 32)
                                       .s;
  EXPECT_THAT(parse_error(huge_strings),
              HasSubstr("metadata key 'arr' [1]: string length 4294967296 runs past the end of the file"));
}

TEST(Gguf, StringLengthPastTheEnd) {
  const std::string bytes =
      Raw().header(3, 0, 1).str("general.name").u32(uint32_t(GgufValueType::STRING)).u64(uint64_t(1) << 32).s;
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.gguf: metadata key 'general.name': string length 4294967296 runs past "
                        "the end of the file (0 bytes left) (at byte 48 of 56)"));
  const std::string key_too_long = Raw().header(3, 0, 1).u64(1000).zeros(16).s;
  EXPECT_THAT(parse_error(key_too_long), HasSubstr("metadata key #0: string length 1000 runs past the end"));
}

TEST(Gguf, BadAlignment) {
  auto with_alignment = [](uint32_t a) { return Raw().header(3, 0, 1).kv_u32("general.alignment", a).s; };
  EXPECT_THAT(parse_error(with_alignment(3)),
              HasSubstr("x.gguf: metadata key 'general.alignment': 3 is not a nonzero power of two"));
  EXPECT_THAT(parse_error(with_alignment(0)), HasSubstr("0 is not a nonzero power of two"));
  EXPECT_EQ(parse_bytes(with_alignment(16))->alignment(), 16u);
  const std::string as_string =
      Raw().header(3, 0, 1).str("general.alignment").u32(uint32_t(GgufValueType::STRING)).str("32").s;
  EXPECT_THAT(parse_error(as_string), HasSubstr("'general.alignment' is STRING, expected UINT32"));
}

TEST(Gguf, MisalignedTensorOffset) {
  const std::string bytes = Raw().header(3, 1, 0).tensor_info("t", {4}, 0, 4).pad(32).zeros(64).s;
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.gguf: tensor 't': data offset 4 is not a multiple of the alignment 32"));
}

TEST(Gguf, TensorDataPastTheEnd) {
  const std::string bytes = Raw().header(3, 1, 0).tensor_info("t", {100}, 0, 32).pad(32).zeros(64).s;
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.gguf: tensor 't': data [offset 32, 400 bytes) ends past the end of "
                        "the file (128 bytes, data section starts at byte 64)"));
  const std::string far = Raw().header(3, 1, 0).tensor_info("t", {1}, 0, uint64_t(-32)).pad(32).zeros(32).s;
  EXPECT_THAT(parse_error(far), HasSubstr("ends past the end of the file"));
  // Tensors but no data section at all: the padding is missing too.
  const std::string none = Raw().header(3, 1, 0).tensor_info("t", {1}, 0, 0).s;
  EXPECT_THAT(parse_error(none),
              HasSubstr("data section starts at byte 64, past the end of the file (57 bytes)"));
}

TEST(Gguf, AbsurdShapes) {
  const std::string overflow =
      Raw().header(3, 1, 0).tensor_info("t", {uint64_t(1) << 40, uint64_t(1) << 40, 0}, 0, 0).pad(32).s;
  EXPECT_THAT(parse_error(overflow), HasSubstr("x.gguf: tensor 't': shape"));
  EXPECT_THAT(parse_error(overflow), HasSubstr("has too many elements"));
  const std::string negative = Raw().header(3, 1, 0).tensor_info("t", {uint64_t(-1)}, 0, 0).pad(32).s;
  EXPECT_THAT(parse_error(negative),
              HasSubstr("tensor 't': dimension ne[0] = 18446744073709551615 is too large"));
  const std::string dims = Raw().header(3, 1, 0).tensor_info("t", {1, 1, 1, 1, 1}, 0, 0).pad(32).s;
  EXPECT_THAT(parse_error(dims), HasSubstr("tensor 't': n_dims 5 is more than 4"));
  const std::string q8 = Raw().header(3, 1, 0).tensor_info("q", {16}, 8, 0).pad(32).zeros(64).s;
  EXPECT_THAT(parse_error(q8),
              HasSubstr("tensor 'q': row length ne[0] = 16 is not a multiple of the Q8_0 block size 32"));
}

TEST(Gguf, UnknownValueType) {
  const std::string bytes = Raw().header(3, 0, 1).str("k").u32(13).u32(0).s;
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.gguf: metadata key 'k': unknown value type 13 (at byte 33 of 41)"));
  const std::string elem =
      Raw().header(3, 0, 1).str("k").u32(uint32_t(GgufValueType::ARRAY)).u32(99).u64(0).s;
  EXPECT_THAT(parse_error(elem), HasSubstr("metadata key 'k': unknown value type 99"));
}

TEST(Gguf, BadBoolAndDeepNesting) {
  const std::string b = Raw().header(3, 0, 1).str("k").u32(uint32_t(GgufValueType::BOOL)).u8(2).s;
  EXPECT_THAT(parse_error(b), HasSubstr("metadata key 'k': bool value 2 is neither 0 nor 1"));
  const uint32_t A = uint32_t(GgufValueType::ARRAY);
  const std::string deep = Raw().header(3, 0, 1).str("k").u32(A).u32(A).u64(1).u32(A).u64(0).zeros(16).s;
  EXPECT_THAT(parse_error(deep), HasSubstr("metadata key 'k' [0]: arrays nested more than 2 levels deep"));
}

TEST(Gguf, UnknownAndUnsupportedGgmlTypesAreReadableButNotSupported) {
  const std::string bytes = Raw()
                                .header(3, 3, 0)
                                .tensor_info("k", {256}, 13, 0)
                                .tensor_info("odd", {7}, 99, 0)
                                .tensor_info("f", {8}, 0, 0)
                                .pad(32)
                                .zeros(256)
                                .s;
  auto f = parse_bytes(bytes);
  ASSERT_EQ(f->tensors().size(), 3u);
  const GgufTensor* k = f->find_tensor("k");
  ASSERT_NE(k, nullptr);
  EXPECT_FALSE(k->supported());
  EXPECT_EQ(ggml_type_name(k->ggml_type), "Q5_K");
  EXPECT_EQ(k->view.shape, std::vector<int64_t>{256});
  EXPECT_EQ(k->view.name, "k");
  const GgufTensor* odd = f->find_tensor("odd");
  EXPECT_FALSE(odd->supported());
  EXPECT_EQ(ggml_type_name(odd->ggml_type), "unknown ggml type 99");
  EXPECT_TRUE(f->find_tensor("f")->supported());
  EXPECT_EQ(ggml_type_name(30), "BF16");
  EXPECT_EQ(ggml_type_name(4), "unknown ggml type 4");
  EXPECT_EQ(ggml_type_name(35), "TQ2_0");
  EXPECT_FALSE(dtype_from_ggml(3).has_value());  // Q4_1
  EXPECT_EQ(dtype_from_ggml(8), DType::Q8_0);
}

TEST(Gguf, DuplicateKeysAndTensors) {
  const std::string keys = Raw().header(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2).s;
  EXPECT_THAT(parse_error(keys), HasSubstr("x.gguf: metadata key 'a': duplicate key (at byte 41 of 58)"));
  const std::string tensors =
      Raw().header(3, 2, 0).tensor_info("t", {1}, 0, 0).tensor_info("t", {1}, 0, 0).pad(32).zeros(32).s;
  EXPECT_THAT(parse_error(tensors), HasSubstr("x.gguf: tensor 't': duplicate tensor name"));
}

TEST(Gguf, HostileNamesStayOnOneLine) {
  const std::string bytes = Raw().header(3, 0, 1).str("bad\nkey").u32(77).s;
  const std::string msg = parse_error(bytes);
  EXPECT_THAT(msg, HasSubstr("metadata key 'bad\\x0akey': unknown value type 77"));
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(Gguf, EmptyFileHasNoTensors) {
  auto f = parse_bytes(GgufWriter().serialize());
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_THAT(error_of([] { GgufFile::parse(nullptr, 0, "empty.gguf"); }),
              HasSubstr("empty.gguf: header: file is too short"));
}

// The fuzz seeds (tests/fuzz/seeds, made by fuzz_make_seeds) must stay valid files.
TEST(Gguf, FuzzSeedsAreValid) {
  const std::filesystem::path dir = std::filesystem::path(DSPARK_FUZZ_SEEDS) / "gguf";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_NO_THROW(GgufFile::open(entry.path().string())) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace dspark
