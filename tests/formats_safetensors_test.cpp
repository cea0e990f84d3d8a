// Safetensors reader and writer: round trips, sharded folders, and hostile headers that must
// each end in one clear Error naming the file and the tensor.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

const char* const kLabel = "x.safetensors";

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
std::shared_ptr<SafetensorsFile> parse_bytes(const std::string& bytes) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  return SafetensorsFile::parse(copy.data(), copy.size(), kLabel);
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { parse_bytes(bytes); });
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// A file from a header text and a data section.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\x5a');
}

std::string one_tensor(const std::string& entry, size_t data_bytes) {
  return raw_file("{\"w\": " + entry + "}", data_bytes);
}

struct Data {
  std::vector<float> f32 = {1, -2, 3.5f, 4, 5, 6};
  std::vector<uint16_t> f16 = {0x3c00, 0x4000, 0xc000, 0x0001};
  std::vector<uint16_t> bf16 = {0x3f80, 0x4040};
};

std::vector<TensorView> views(const Data& d) {
  return {
      {"model.f16", DType::F16, {4}, d.f16.data()},       {"model.f32", DType::F32, {2, 3}, d.f32.data()},
      {"model.bf16", DType::BF16, {1, 2}, d.bf16.data()}, {"model.scalar", DType::F32, {}, d.f32.data()},
      {"model.empty", DType::BF16, {0, 5}, nullptr},
  };
}

std::string written_file(const std::map<std::string, std::string>& metadata = {}) {
  const std::string path = test::temp_dir() + "/model.safetensors";
  Data d;
  write_safetensors(path, views(d), metadata);
  return test::read_file(path);
}

TEST(Safetensors, RoundTripsEverySupportedType) {
  const std::string dir = test::temp_dir();
  const std::string path = dir + "/m.safetensors";
  Data d;
  write_safetensors(path, views(d), {{"format", "pt"}, {"note", "x\ny"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->label(), path);
  EXPECT_EQ(f->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x\ny"}}));
  ASSERT_EQ(f->tensors().size(), 5u);
  const std::string bytes = test::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  for (const TensorView& want : views(d)) {
    SCOPED_TRACE(want.name);
    auto it = f->tensors().find(want.name);
    ASSERT_NE(it, f->tensors().end());
    const SafetensorsEntry& e = it->second;
    EXPECT_EQ(e.dtype, dtype_name(want.type));
    EXPECT_EQ(e.view.name, want.name);
    EXPECT_EQ(e.view.type, want.type);
    EXPECT_EQ(e.view.shape, want.shape);
    ASSERT_NE(e.view.data, nullptr);
    ASSERT_EQ(e.view.nbytes(), want.nbytes());
    if (want.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(e.view.data, want.data, want.nbytes()), 0);
    }
  }
  // Larger elements are written first, so each tensor is aligned to its element size.
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  auto g = SafetensorsFile::parse(copy.data(), copy.size(), kLabel);
  for (const auto& [name, e] : g->tensors()) {
    const size_t at = size_t(static_cast<const uint8_t*>(e.view.data) - copy.data());
    EXPECT_EQ(at % dtype_block_bytes(e.view.type), 0u) << name;
  }
}

TEST(Safetensors, WriterRefusesWhatItCannotWrite) {
  const std::string path = test::temp_dir() + "/w.safetensors";
  const uint8_t buf[68] = {};
  EXPECT_THAT(error_of([&] {
                write_safetensors(path, {{"q", DType::Q8_0, {1, 32}, buf}});
              }),
              HasSubstr(path + ": tensor 'q': safetensors has no Q8_0 type"));
  EXPECT_THAT(error_of([&] {
                write_safetensors(path, {{"a", DType::F32, {1}, buf}, {"a", DType::F32, {1}, buf}});
              }),
              HasSubstr("tensor name 'a' is reserved or used twice"));
  EXPECT_THAT(error_of([&] {
                write_safetensors(path, {{"a", DType::F32, {2}, nullptr}});
              }),
              HasSubstr("no data"));
}

TEST(Safetensors, WriterRefusesEveryQuantizedType) {
  const std::string path = test::temp_dir() + "/q.safetensors";
  static const uint8_t buf[4 * 256] = {};  // more than one row of 256 values in any type
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    const std::string name(dtype_name(t));
    EXPECT_THAT(error_of([&] {
                  write_safetensors(path, {{"f", DType::F32, {1}, buf}, {"q", t, {1, 256}, buf}});
                }),
                HasSubstr(path + ": tensor 'q': safetensors has no " + name + " type"))
        << name;
    EXPECT_FALSE(std::filesystem::exists(path)) << name;
  }
  // The plain element types are written and read back.
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    write_safetensors(path, {{"x", t, {1, 256}, buf}});
    auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f->tensors().at("x").view.type, t);
  }
}

TEST(Safetensors, EveryTruncationIsAnError) {
  const std::string bytes = written_file({{"format", "pt"}});
  ASSERT_NO_THROW(parse_bytes(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string msg = parse_error(bytes.substr(0, n));
    EXPECT_THAT(msg, HasSubstr("x.safetensors: ")) << "prefix " << n;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(Safetensors, HeaderLength) {
  EXPECT_THAT(parse_error("abc"),
              HasSubstr("x.safetensors: file is too short for a safetensors header (3 bytes"));
  EXPECT_THAT(parse_error(u64_le(100) + "{}"),
              HasSubstr("x.safetensors: header length 100 runs past the end of the file (10 bytes)"));
  EXPECT_THAT(parse_error(u64_le(uint64_t(-1)) + "{}"),
              HasSubstr("header length 18446744073709551615 is over"));
  EXPECT_THAT(error_of([] { SafetensorsFile::parse(nullptr, 0, "e.safetensors"); }),
              HasSubstr("e.safetensors: file is too short"));
}

TEST(Safetensors, HeaderJson) {
  EXPECT_THAT(parse_error(raw_file("{\"w\": ", 0)), HasSubstr("x.safetensors: header is not valid JSON: "));
  EXPECT_THAT(parse_error(raw_file("[1, 2]", 0)),
              HasSubstr("x.safetensors: header must be a JSON object, got array"));
  EXPECT_THAT(parse_error(raw_file("{\"a\": {}, \"a\": {}}", 0)),
              HasSubstr("x.safetensors: header names 'a' twice"));
  EXPECT_THAT(parse_error(raw_file(std::string(10000, '[') + std::string(10000, ']'), 0)),
              HasSubstr("header nests deeper than 8 levels"));
  EXPECT_THAT(parse_error(raw_file("{\"__metadata__\": {\"k\": 1}}", 0)),
              HasSubstr("x.safetensors: \"__metadata__\" value 'k' must be a string, got 1"));
  EXPECT_THAT(parse_error(raw_file("{\"__metadata__\": []}", 0)),
              HasSubstr("\"__metadata__\" must be an object"));
  // Repeated keys inside an entry are nlohmann's business (last wins); only names must be unique.
  EXPECT_NO_THROW(parse_bytes(
      one_tensor(R"({"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 4)));
  EXPECT_THAT(
      parse_error(one_tensor(R"({"dtype": "F32", "shape": [[[[[[[[1]]]]]]]], "data_offsets": [0, 4]})", 4)),
      HasSubstr("header nests deeper than 8 levels"));
  // Spaces after the object are the format's padding.
  auto f = parse_bytes(raw_file("{\"__metadata__\": {\"k\": \"v\"}}     ", 0));
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_TRUE(f->tensors().empty());
}

TEST(Safetensors, OffsetsThatDisagreeWithTheShape) {
  const std::string bytes = one_tensor(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]})", 24);
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.safetensors: tensor 'w': data_offsets [0, 20] hold 20 bytes, but shape "
                        "[2, 3] of F32 needs 6 elements of 4 bytes"));
  const std::string i64 = one_tensor(R"({"dtype": "I64", "shape": [2], "data_offsets": [0, 8]})", 8);
  EXPECT_THAT(parse_error(i64), HasSubstr("tensor 'w': data_offsets [0, 8] hold 8 bytes"));
  const std::string huge =
      one_tensor(R"({"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]})", 8);
  EXPECT_THAT(parse_error(huge), HasSubstr("needs 4611686018427387904 elements of 8 bytes"));
}

TEST(Safetensors, OffsetsPastTheEnd) {
  const std::string bytes = one_tensor(R"({"dtype": "F16", "shape": [4], "data_offsets": [8, 16]})", 12);
  EXPECT_THAT(parse_error(bytes),
              HasSubstr("x.safetensors: tensor 'w': data_offsets [8, 16] end past the end of the "
                        "data (12 bytes)"));
  const std::string backwards = one_tensor(R"({"dtype": "F16", "shape": [0], "data_offsets": [8, 4]})", 12);
  EXPECT_THAT(parse_error(backwards), HasSubstr("tensor 'w': data_offsets [8, 4] end before they begin"));
}

TEST(Safetensors, EntryFieldTypes) {
  auto err = [](const std::string& entry) { return parse_error(one_tensor(entry, 16)); };
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]})"),
              HasSubstr("x.safetensors: tensor 'w': \"shape\" must be an array, got number"));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]})"),
              HasSubstr("tensor 'w': \"shape\" must hold non-negative integers, got -4"));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]})"),
              HasSubstr("\"shape\" must hold non-negative integers, got 4.0"));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 16]})"),
              HasSubstr("must hold non-negative integers"));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [4294967296, 4294967296, 0], "data_offsets": [0, 16]})"),
              HasSubstr("has too many elements"));
  EXPECT_THAT(err(R"({"dtype": 3, "shape": [4], "data_offsets": [0, 16]})"),
              HasSubstr("tensor 'w': \"dtype\" must be a string, got 3"));
  EXPECT_THAT(err(R"({"shape": [4], "data_offsets": [0, 16]})"), HasSubstr("tensor 'w': missing \"dtype\""));
  EXPECT_THAT(err(R"({"dtype": "F32", "data_offsets": [0, 16]})"),
              HasSubstr("tensor 'w': missing \"shape\""));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [4]})"), HasSubstr("tensor 'w': missing \"data_offsets\""));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]})"),
              HasSubstr("\"data_offsets\" must be an array [begin, end], got [0,8,16]"));
  EXPECT_THAT(err(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, "16"]})"),
              HasSubstr("\"data_offsets\" must hold non-negative integers"));
  EXPECT_THAT(err(R"([1])"), HasSubstr("tensor 'w': entry must be an object, got array"));
  // A long hostile value is cut short in the message.
  const std::string long_dim = "\"" + std::string(100000, 'x') + "\"";
  const std::string msg = err(R"({"dtype": "F32", "shape": [)" + long_dim + R"(], "data_offsets": [0, 16]})");
  EXPECT_THAT(msg, HasSubstr("\"shape\" must hold non-negative integers, got \"xxx"));
  EXPECT_LT(msg.size(), 300u);
}

TEST(Safetensors, OtherDtypesAreReadableWithoutData) {
  const std::string header = R"({"a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},)"
                             R"( "b": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [16, 20]},)"
                             R"( "c": {"dtype": "NEWTYPE", "shape": [3], "data_offsets": [20, 21]},)"
                             R"( "d": {"dtype": "F32", "shape": [1], "data_offsets": [24, 28]}})";
  auto f = parse_bytes(raw_file(header, 28));
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->tensors().at("a").dtype, "I64");
  EXPECT_TRUE(f->tensors().at("a").view.empty());
  EXPECT_EQ(f->tensors().at("a").view.shape, std::vector<int64_t>{2});
  EXPECT_EQ(f->tensors().at("b").dtype, "F8_E4M3");
  EXPECT_TRUE(f->tensors().at("b").view.empty());
  EXPECT_EQ(f->tensors().at("c").dtype, "NEWTYPE");  // size unknown, so not checked
  EXPECT_TRUE(f->tensors().at("c").view.empty());
  EXPECT_FALSE(f->tensors().at("d").view.empty());
}

// A folder with two shards and the index that maps tensors to them.
struct ShardedFolder {
  std::string dir = test::temp_dir();
  Data d;
  ShardedFolder() {
    write_safetensors(dir + "/model-00001-of-00002.safetensors",
                      {{"a", DType::F32, {2, 3}, d.f32.data()}, {"b", DType::F16, {4}, d.f16.data()}});
    write_safetensors(dir + "/model-00002-of-00002.safetensors",
                      {{"c", DType::BF16, {2}, d.bf16.data()}, {"unlisted", DType::F32, {1}, d.f32.data()}});
  }
  void index(const std::string& weight_map) {
    test::write_file(dir + "/model.safetensors.index.json",
                     "{\"metadata\": {\"total_size\": 40}, \"weight_map\": " + weight_map + "}");
  }
  std::string standard_map() const {
    return R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",)"
           R"( "c": "model-00002-of-00002.safetensors"})";
  }
};

TEST(Safetensors, ShardedFolderWithIndex) {
  ShardedFolder s;
  s.index(s.standard_map());
  SafetensorsSet set = SafetensorsSet::open_folder(s.dir);
  EXPECT_EQ(set.files.size(), 2u);
  EXPECT_EQ(set.tensors().size(), 3u);
  const SafetensorsEntry* c = set.find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->view.shape, std::vector<int64_t>{2});
  EXPECT_EQ(std::memcmp(c->view.data, s.d.bf16.data(), 4), 0);
  ASSERT_NE(set.find("a"), nullptr);
  EXPECT_EQ(std::memcmp(set.find("a")->view.data, s.d.f32.data(), 24), 0);
  EXPECT_EQ(set.find("unlisted"), nullptr);
  EXPECT_EQ(set.find("zzz"), nullptr);
}

TEST(Safetensors, SingleFileFolder) {
  const std::string dir = test::temp_dir();
  Data d;
  write_safetensors(dir + "/model.safetensors", views(d));
  SafetensorsSet set = SafetensorsSet::open_folder(dir);
  EXPECT_EQ(set.files.size(), 1u);
  EXPECT_EQ(set.tensors().size(), 5u);
  ASSERT_NE(set.find("model.f32"), nullptr);
}

TEST(Safetensors, FolderErrors) {
  const std::string empty = test::temp_dir();
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(empty); }),
              HasSubstr(empty + ": no model.safetensors or model.safetensors.index.json"));

  ShardedFolder s;
  const std::string index = s.dir + "/model.safetensors.index.json";
  s.index(R"({"a": "model-00001-of-00002.safetensors", "x": "model-00003-of-00003.safetensors"})");
  EXPECT_THAT(
      error_of([&] { SafetensorsSet::open_folder(s.dir); }),
      HasSubstr(index + ": shard 'model-00003-of-00003.safetensors' (listed for tensor 'x') does not exist"));
  s.index(R"({"a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"})");
  EXPECT_THAT(
      error_of([&] { SafetensorsSet::open_folder(s.dir); }),
      HasSubstr(index + ": tensor 'c' is listed for shard 'model-00001-of-00002.safetensors', which does not "
                        "contain it"));
  s.index(R"({"a": "../model-00001-of-00002.safetensors"})");
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(s.dir); }), HasSubstr("outside the folder"));
  s.index(R"({"a": 5})");
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(s.dir); }),
              HasSubstr(index + ": weight_map entry 'a' must be a file name string"));
  s.index("[]");
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(s.dir); }),
              HasSubstr(index + ": missing \"weight_map\""));
  test::write_file(index, "{\"weight_map\": ");
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(s.dir); }),
              HasSubstr(index + ": index is not valid JSON"));
  // A shard that is itself broken is named by its own path.
  s.index(s.standard_map());
  test::write_file(s.dir + "/model-00002-of-00002.safetensors", "short");
  EXPECT_THAT(error_of([&] { SafetensorsSet::open_folder(s.dir); }),
              HasSubstr(s.dir + "/model-00002-of-00002.safetensors: file is too short"));
}

// The fuzz seeds (tests/fuzz/seeds, made by fuzz_make_seeds) must stay valid files.
TEST(Safetensors, FuzzSeedsAreValid) {
  const std::filesystem::path dir = std::filesystem::path(DSPARK_FUZZ_SEEDS) / "safetensors";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_NO_THROW(SafetensorsFile::open(entry.path().string())) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace dspark
