// Writes the fuzz seed corpus: small valid files that exercise every branch of the readers,
// so the fuzzers start from deep inside the formats instead of from random bytes.
//   fuzz_make_seeds tests/fuzz/seeds
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace {

using namespace dspark;

GgufValue int_array(std::vector<int32_t> xs) {
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.elem_type = GgufValueType::INT32;
  for (int32_t x : xs) {
    GgufValue e;
    e.type = GgufValueType::INT32;
    e.i = x;
    v.array.push_back(e);
  }
  return v;
}

// Metadata of most value types, an array of strings, an array of arrays, and one tensor of
// each supported type.
void write_model_gguf(const std::string& path, uint64_t alignment) {
  GgufWriter w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", 1);
  w.set_int32("t.i32", -7);
  w.set_uint64("t.u64", 1ull << 40);
  w.set_float32("llama.rope.freq_base", 10000.0f);
  w.set_bool("t.bool", true);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b"});
  w.set_float_array("tokenizer.ggml.scores", {0.0f, -1.0f});
  GgufValue nested;
  nested.type = GgufValueType::ARRAY;
  nested.elem_type = GgufValueType::ARRAY;
  nested.array = {int_array({1, 2}), int_array({})};
  w.set_value("t.nested", nested);
  const std::vector<float> f32 = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> half = {0x3c00, 0x4000};
  std::vector<BlockQ8_0> q8(1);
  q8[0].d = 0x3c00;
  for (int i = 0; i < 32; ++i) q8[0].qs[i] = int8_t(i - 16);
  w.add_tensor("w.f32", DType::F32, {2, 3}, f32.data());
  w.add_tensor("w.f16", DType::F16, {2}, half.data());
  w.add_tensor("w.bf16", DType::BF16, {1, 2}, half.data());
  w.add_tensor("w.q8_0", DType::Q8_0, {1, 32}, q8.data());
  w.write(path);
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) fail(path, ": cannot write");
}

// A header with a dtype dspark does not read, beside one it does.
void write_mixed_safetensors(const std::string& path) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("w":{"dtype":"F32","shape":[1,1],"data_offsets":[16,20]}})";
  uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_raw(path, bytes + header + std::string(20, '\1'));
}

void write_seeds(const std::string& root) {
  const std::string g = root + "/gguf", s = root + "/safetensors";
  std::filesystem::create_directories(g);
  std::filesystem::create_directories(s);
  write_model_gguf(g + "/model.gguf", 32);
  write_model_gguf(g + "/model_align8.gguf", 8);
  GgufWriter().write(g + "/empty.gguf");

  const std::vector<float> f32 = {1, -2, 3, 4};
  const std::vector<uint16_t> half = {0x3c00, 0x4000, 0xc000};
  write_safetensors(s + "/model.safetensors",
                    {{"a", DType::F32, {2, 2}, f32.data()},
                     {"b", DType::F16, {3}, half.data()},
                     {"c", DType::BF16, {1, 1}, half.data()}},
                    {{"format", "pt"}});
  write_safetensors(s + "/empty.safetensors", {});
  write_mixed_safetensors(s + "/mixed.safetensors");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds OUT_DIR\n";
    return 2;
  }
  try {
    write_seeds(argv[1]);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
