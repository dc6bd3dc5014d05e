// kiln.hpp over the C ABI: bad arguments come back as kiln::Exception with the C status, never
// as another exception type or undefined behaviour on the C++ side.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <cstdint>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

template <typename F>
kiln_status status_of(F&& fn) {
  try {
    fn();
  } catch (const kiln::Exception& e) {
    return e.status();
  }
  return KILN_OK;
}

TEST(CppLayer, NegativeImageSizesAreInvalidArguments) {
  kiln::Runtime rt;
  const std::vector<float> data(3 * 2 * 2, 0.f);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, -1, 4); }),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, 4, -4); }),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, 4, 4); }), KILN_OK);
}

TEST(CppLayer, NoiseShapeErrors) {
  kiln::Runtime rt;
  const kiln_noise_params p = kiln_noise_default_params();
  const std::vector<int64_t> negative{-1, 0}, huge{int64_t{1} << 32, int64_t{1} << 32, 4};
  EXPECT_EQ(status_of([&] { rt.noise(negative, p); }), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.noise(huge, p); }), KILN_ERR_INVALID_ARGUMENT);
  const std::vector<int64_t> ok{1, 4, 3, 5};
  EXPECT_EQ(rt.noise(ok, p).size(), 60u);
}

}  // namespace

namespace {
std::string fixture(const char* name) {
  const char* d = std::getenv("KILN_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/" + name;
}
}  // namespace

TEST(CApi, RenderThroughThePublicApi) {
  kiln::Runtime rt;
  kiln::Model model(rt, fixture("sd15_pipe"));
  EXPECT_EQ(model.family(), "sd1");
  kiln_model_defaults d = model.defaults();
  EXPECT_EQ(d.size_multiple, 2);
  kiln_render_params p = kiln_render_default_params();
  p.prompt = "a castle on a hill";
  p.width = 24;
  p.height = 16;
  p.steps = 3;
  p.seed = 9;
  p.batch = 2;
  int calls = 0;
  p.progress = [](int step, int total, void* ud) {
    ++*static_cast<int*>(ud);
    return step > total ? 1 : 0;
  };
  p.user_data = &calls;
  auto images = model.render(p);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].width, 24);
  EXPECT_EQ(images[0].height, 16);
  EXPECT_EQ(images[0].channels, 3);
  EXPECT_EQ(calls, 3);
  EXPECT_NE(images[0].pixels, images[1].pixels);  // two different noises
  // Same seed -> same pixels.
  p.batch = 1;
  auto again = model.render(p);
  EXPECT_EQ(again[0].pixels, images[0].pixels);
}

TEST(CApi, RenderCancelAndBadParams) {
  kiln::Runtime rt;
  kiln::Model model(rt, fixture("sd15_pipe"));
  kiln_render_params p = kiln_render_default_params();
  p.prompt = "x";
  p.width = p.height = 16;
  p.steps = 4;
  p.progress = [](int step, int, void*) { return step >= 1 ? 1 : 0; };  // cancel after step 1
  kiln_images* out = nullptr;
  EXPECT_EQ(kiln_render(reinterpret_cast<kiln_model*>(0), &p, &out), KILN_ERR_INVALID_ARGUMENT);
  try {
    model.render(p);
    FAIL() << "expected cancellation";
  } catch (const kiln::Exception& e) {
    EXPECT_EQ(e.status(), KILN_ERR_CANCELLED) << e.what();
  }
  p.progress = nullptr;
  p.width = 17;
  try {
    model.render(p);
    FAIL() << "expected an error";
  } catch (const kiln::Exception& e) {
    EXPECT_EQ(e.status(), KILN_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("multiple of 2"), std::string::npos) << e.what();
  }
  p.width = 16;
  p.sampler = "no_such_sampler";
  try {
    model.render(p);
    FAIL() << "expected an error";
  } catch (const kiln::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("unknown sampler"), std::string::npos) << e.what();
  }
  p.sampler = nullptr;
  p.struct_size = 8;
  EXPECT_EQ(kiln_render(nullptr, &p, &out), KILN_ERR_INVALID_ARGUMENT);
}

// The device option of kiln_model_load_with_params: the CPU by default, a bad string and a
// device that does not exist are invalid arguments named in the message, before any weight is
// read. (Rendering on CUDA: tests/cuda/test_cuda_pipelines.cpp.)
TEST(CApi, ModelDeviceOption) {
  kiln::Runtime rt;
  EXPECT_EQ(kiln::Model(rt, fixture("sd15_pipe")).device(), "cpu");
  EXPECT_EQ(kiln::Model(rt, fixture("sd15_pipe"), "cpu").device(), "cpu");
  auto message_of = [&](const char* device) -> std::string {
    try {
      kiln::Model m(rt, fixture("sd15_pipe"), device);
    } catch (const kiln::Exception& e) {
      EXPECT_EQ(e.status(), KILN_ERR_INVALID_ARGUMENT) << e.what();
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message_of("gpu").find("unknown device 'gpu'"), std::string::npos);
  EXPECT_NE(message_of("cuda:x").find("unknown device 'cuda:x'"), std::string::npos);
  EXPECT_NE(message_of("cuda:7").find("cuda:7 does not exist"), std::string::npos);
  kiln_model_load_params p = kiln_model_load_default_params();
  EXPECT_EQ(p.struct_size, sizeof(kiln_model_load_params));
  EXPECT_EQ(p.device, nullptr);
  p.struct_size = 4;
  kiln_model* m = nullptr;
  EXPECT_EQ(kiln_model_load_with_params(rt.get(), fixture("sd15_pipe").c_str(), &p, &m),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_STREQ(kiln_model_device(nullptr), "");
}

TEST(CApi, DetectFamilyAndUnknownFolders) {
  EXPECT_EQ(kiln::detect_family(fixture("sd15_pipe")), "sd1");
  try {
    kiln::detect_family(fixture("unet/sd15"));
    FAIL() << "expected an error";
  } catch (const kiln::Exception& e) {
    EXPECT_EQ(e.status(), KILN_ERR_NOT_FOUND) << e.what();
  }
  EXPECT_FALSE(kiln::sampler_names().empty());
  EXPECT_EQ(kiln::schedule_names().front(), "default");
}
