// Helpers shared by the test programs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dspark::test {

// Path of a file in ../shared/models.
std::string shared_model(const std::string& rel);
// A fresh, empty directory under the system temp dir, unique per call.
std::string temp_dir();
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
// Runs a shell command, returns its exit status; stdout goes to *out when given.
int run_command(const std::string& cmd, std::string* out = nullptr);

}  // namespace dspark::test
