// C ABI: weights (kiln_weights_*) and tensor files.
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "capi_common.hpp"
#include "kiln/core/copy.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/io/weight_source.hpp"

using namespace kiln;

struct kiln_weights {
  std::shared_ptr<io::WeightSource> source;
  std::vector<std::string> names;  // sorted; kiln_tensor_info.name points into these
  std::vector<std::string> dtypes, files;
};

extern "C" {

KILN_API kiln_status kiln_weights_open(kiln_runtime* rt, const char* path, kiln_weights** out) {
  return capi::guard([&] {
    const char* fn = "kiln_weights_open";
    capi::need(rt, fn, "rt");
    capi::need(path, fn, "path");
    capi::need(out, fn, "out");
    *out = nullptr;
    auto w = std::make_unique<kiln_weights>();
    w->source = io::open_weights(path);
    w->names = w->source->names();
    for (const auto& n : w->names) {
      io::TensorInfo ti = w->source->info(n);
      w->dtypes.emplace_back(dtype_name(ti.dtype));
      w->files.push_back(ti.file.string());
    }
    rt->logger.info("opened ", w->source->describe(), ": ", w->names.size(), " tensors");
    *out = w.release();
  });
}

KILN_API void kiln_weights_free(kiln_weights* w) { delete w; }

KILN_API kiln_status kiln_weights_count(const kiln_weights* w, size_t* out) {
  return capi::guard([&] {
    capi::need(w, "kiln_weights_count", "w");
    capi::need(out, "kiln_weights_count", "out");
    *out = w->names.size();
  });
}

KILN_API kiln_status kiln_weights_tensor_info(const kiln_weights* w, size_t index,
                                              kiln_tensor_info* out) {
  return capi::guard([&] {
    const char* fn = "kiln_weights_tensor_info";
    capi::need(w, fn, "w");
    capi::need(out, fn, "out");
    KILN_ARG(out->struct_size == sizeof(kiln_tensor_info), fn, "out->struct_size ",
             out->struct_size, " != sizeof(kiln_tensor_info) ", sizeof(kiln_tensor_info));
    KILN_ARG(index < w->names.size(), fn, "index ", index, " out of range (", w->names.size(),
             " tensors)");
    io::TensorInfo ti = w->source->info(w->names[index]);
    out->name = w->names[index].c_str();
    out->dtype = w->dtypes[index].c_str();
    out->file = w->files[index].c_str();
    out->ndim = ti.shape.size();
    for (int i = 0; i < KILN_MAX_DIMS; ++i) out->shape[i] = i < ti.shape.size() ? ti.shape[i] : 0;
    out->nbytes = static_cast<uint64_t>(dtype_nbytes(ti.dtype, shape_numel(ti.shape)));
  });
}

KILN_API kiln_status kiln_weights_read_f32(const kiln_weights* w, const char* name, float* out,
                                           size_t out_len) {
  return capi::guard([&] {
    const char* fn = "kiln_weights_read_f32";
    capi::need(w, fn, "w");
    capi::need(name, fn, "name");
    capi::need(out, fn, "out");
    Tensor t = w->source->get(name);
    KILN_ARG(static_cast<uint64_t>(t.numel()) == out_len, fn, "out_len ", out_len, " != ",
             t.numel(), " elements of '", name, "'");
    KILN_CHECK(dtype_info(t.dtype()).block_elems == 1, Status::unsupported, fn,
               "'", name, "' is ", dtype_name(t.dtype()), ", which has no element-wise f32 view");
    Tensor c = t.contiguous();
    convert_to_f32(out, c.raw_data(), c.dtype(), c.numel());
  });
}

KILN_API kiln_status kiln_safetensors_write_f32(const char* path, size_t n, const char* const* names,
                                                const float* const* data, const int* ndims,
                                                const int64_t* const* shapes) {
  return capi::guard([&] {
    const char* fn = "kiln_safetensors_write_f32";
    capi::need(path, fn, "path");
    if (n) {
      capi::need(names, fn, "names");
      capi::need(data, fn, "data");
      capi::need(ndims, fn, "ndims");
      capi::need(shapes, fn, "shapes");
    }
    std::map<std::string, Tensor> tensors;
    for (size_t i = 0; i < n; ++i) {
      KILN_ARG(names[i] && *names[i], fn, "tensor ", i, " has no name");
      KILN_ARG(ndims[i] >= 0 && ndims[i] <= KILN_MAX_DIMS, fn, "tensor '", names[i], "' ndim ",
               ndims[i], " out of range");
      KILN_ARG(ndims[i] == 0 || shapes[i], fn, "tensor '", names[i], "' shape is NULL");
      Shape s(std::span<const int64_t>(shapes[i], static_cast<size_t>(ndims[i])));
      Tensor t = Tensor::empty(s, DType::f32);
      if (t.numel()) {
        KILN_ARG(data[i], fn, "tensor '", names[i], "' data is NULL");
        std::memcpy(t.mutable_raw_data(), data[i], t.nbytes());
      }
      KILN_ARG(tensors.emplace(names[i], t).second, fn, "tensor name '", names[i], "' repeated");
    }
    io::save_safetensors(path, tensors);
  });
}

}  // extern "C"
