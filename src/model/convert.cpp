#include "model/convert.h"

#include "core/error.h"
#include "kernels/quantize.h"

namespace dspark {

DType converted_type(const TensorView& t, std::optional<DType> type) {
  if (t.shape.size() == 1) return DType::F32;
  const DType want = type.value_or(t.type);
  return t.cols() % dtype_block_elems(want) == 0 ? want : t.type;
}

std::string conversion_misfit(const Model& m, DType type) {
  std::string why;
  m.for_each_tensor([&](const TensorView& t) {
    if (why.empty() && t.shape.size() > 1 && t.cols() % dtype_block_elems(type) != 0)
      why = "tensor '" + t.name + "' has rows of " + std::to_string(t.cols()) + " values, not whole " +
            std::string(dtype_name(type)) + " blocks of " + std::to_string(dtype_block_elems(type));
  });
  return why;
}

std::shared_ptr<Model> convert_model(const Model& m, DType type) {
  if (const std::string why = conversion_misfit(m, type); !why.empty()) fail(m.source, ": ", why);
  auto out = std::make_shared<Model>(m);  // shares m's views and keeps their storage alive
  auto convert = [&](TensorView& t) {
    const DType to = converted_type(t, type);
    if (t.empty() || to == t.type) return;
    t = out->storage.own(t.name, to, t.shape, convert_tensor(t, to));
  };
  const bool tied = m.output.data == m.tok_embeddings.data;
  convert(out->tok_embeddings);
  if (tied)
    out->output = out->tok_embeddings;
  else
    convert(out->output);
  for (LayerWeights& l : out->layers)
    for (TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) convert(*t);
  out->validate();
  return out;
}

}  // namespace dspark
