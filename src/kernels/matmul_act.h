// Prepared activations of the SIMD integer kernels (internal to the kernel files).
//
// The integer kernels work "lane-major": each vector lane accumulates the whole dot product
// of one unit (a block of 32 values, or a 16-value Q6_K sub-block), so a unit's scale is
// applied once per unit and not once per 4 values. The weights are transposed into that
// order on the fly, in registers; the activations are stored in it once per matmul call.
//
// A token's activations are a sequence of groups, one per `lanes` consecutive units; a
// group holds, in this order:
//   qs[chunks][lanes][4]  int8: chunk k, lane L holds values 4k .. 4k+3 of unit unit_of(L)
//   scale[lanes]          float: the activation scale of the unit in that lane
//   bias[lanes]           int32: added to the integer dot product (-offset * sum of quants,
//                         where the weight's integer codes carry +offset)
//   extra[lanes]          float, only if `extra`: scale * sum of the unit's quants (Q4_K mins)
// Lanes of units past the end of the row hold zeros.
#pragma once

#include <cstdint>
#include <cstring>

namespace dspark::kernels {

struct ActLayout {
  int lanes;               // units per group
  int chunks;              // 4-value chunks per unit
  bool extra;              // groups carry the extra floats
  const uint8_t* lane_of;  // lane_of[u]: lane of the group's unit u

  constexpr int unit_values() const { return 4 * chunks; }
  constexpr size_t qs_bytes() const { return size_t(lanes) * size_t(chunks) * 4; }
  constexpr size_t scale_offset() const { return qs_bytes(); }
  constexpr size_t bias_offset() const { return qs_bytes() + size_t(lanes) * 4; }
  constexpr size_t extra_offset() const { return qs_bytes() + size_t(lanes) * 8; }
  constexpr size_t group_bytes() const { return qs_bytes() + size_t(lanes) * 4 * (extra ? 3 : 2); }
  constexpr int64_t groups(int64_t cols) const {
    const int64_t per_group = int64_t(lanes) * unit_values();
    return (cols + per_group - 1) / per_group;
  }
  constexpr size_t token_bytes(int64_t cols) const { return size_t(groups(cols)) * group_bytes(); }

  // Stores unit `u` (counted from the start of the row) of a token whose groups start at `act`.
  void put(uint8_t* act, int64_t u, const int8_t* q, float scale, int32_t bias, float extra_value) const {
    uint8_t* g = act + size_t(u / lanes) * group_bytes();
    const int lane = lane_of[u % lanes];
    for (int k = 0; k < chunks; ++k) std::memcpy(g + size_t(k * lanes + lane) * 4, q + 4 * k, 4);
    std::memcpy(g + scale_offset() + size_t(lane) * 4, &scale, 4);
    std::memcpy(g + bias_offset() + size_t(lane) * 4, &bias, 4);
    if (extra) std::memcpy(g + extra_offset() + size_t(lane) * 4, &extra_value, 4);
  }
  // Zeroes the last group, whose lanes past the row's end must read as zeros.
  void clear_last_group(uint8_t* act, int64_t cols) const {
    std::memset(act + size_t(groups(cols) - 1) * group_bytes(), 0, group_bytes());
  }
};

}  // namespace dspark::kernels
