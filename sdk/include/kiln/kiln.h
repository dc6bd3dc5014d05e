/* kiln — C ABI. Opaque handles, `*_default_params()` constructors with `struct_size` first,
 * per-object callbacks with `user_data`, nothing process-global. Every function that can fail
 * returns a kiln_status; the message is in kiln_last_error() (thread-local, valid until the
 * next kiln call on the same thread). No exception crosses this boundary and nothing a caller
 * can pass aborts the process.
 *
 * Pointers: input strings are UTF-8, NUL-terminated; output buffers are caller-owned with their
 * sizes passed in. Handles are freed with their *_free function (NULL is accepted). */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#elif defined(KILN_BUILDING_LIBRARY)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status and errors */
typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERR_INVALID_ARGUMENT = 1, /* a value passed is wrong (shape, range, NULL pointer) */
  KILN_ERR_NOT_FOUND = 2,        /* file, tensor or component missing */
  KILN_ERR_IO = 3,               /* open/read/write failed */
  KILN_ERR_FORMAT = 4,           /* a file's content is malformed */
  KILN_ERR_UNSUPPORTED = 5,      /* valid, but this build or device cannot do it */
  KILN_ERR_OUT_OF_MEMORY = 6,
  KILN_ERR_INTERNAL = 7, /* a bug in kiln; please report the message */
  KILN_ERR_CANCELLED = 8,
  KILN_ERR_DEVICE = 9 /* the accelerator runtime reported an error */
} kiln_status;

KILN_API const char* kiln_version(void);
KILN_API const char* kiln_status_name(kiln_status status);
/* The message of the last failed call on this thread ("" if none). */
KILN_API const char* kiln_last_error(void);

/* ---------------------------------------------------------------- logging */
typedef enum kiln_log_level {
  KILN_LOG_DEBUG = 0,
  KILN_LOG_INFO = 1,
  KILN_LOG_WARN = 2,
  KILN_LOG_ERROR = 3,
  KILN_LOG_OFF = 4
} kiln_log_level;
typedef void (*kiln_log_callback)(kiln_log_level level, const char* message, void* user_data);

/* ---------------------------------------------------------------- runtime */
typedef struct kiln_runtime kiln_runtime;

typedef struct kiln_runtime_params {
  size_t struct_size;          /* sizeof(kiln_runtime_params) */
  int num_threads;             /* CPU threads; 0 = all cores */
  kiln_log_level log_level;    /* default KILN_LOG_INFO */
  kiln_log_callback log;       /* NULL = stderr */
  void* log_user_data;
} kiln_runtime_params;

KILN_API kiln_runtime_params kiln_runtime_default_params(void);
KILN_API kiln_status kiln_runtime_create(const kiln_runtime_params* params, kiln_runtime** out);
KILN_API void kiln_runtime_free(kiln_runtime* rt);

typedef enum kiln_device_type { KILN_DEVICE_CPU = 0, KILN_DEVICE_CUDA = 1 } kiln_device_type;
/* Number of devices of a type (0 for CUDA in a CPU-only build or without a driver). */
KILN_API kiln_status kiln_runtime_device_count(const kiln_runtime* rt, kiln_device_type type,
                                               int* out);
/* Writes a description ("NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 81079 MiB") into buf. */
KILN_API kiln_status kiln_runtime_device_name(const kiln_runtime* rt, kiln_device_type type,
                                              int index, char* buf, size_t buf_size);
/* Build facts as "key=value" lines: version, CUDA, GEMM library, threads, stb. */
KILN_API kiln_status kiln_runtime_build_info(const kiln_runtime* rt, char* buf, size_t buf_size);

/* ---------------------------------------------------------------- weights */
/* An opened set of weights: one .safetensors file, a sharded *.safetensors.index.json, or a
 * directory holding one of those (a diffusers component folder). Tensors are mapped, not read. */
typedef struct kiln_weights kiln_weights;

#define KILN_MAX_DIMS 6
typedef struct kiln_tensor_info {
  size_t struct_size;       /* sizeof(kiln_tensor_info) */
  const char* name;         /* valid while the kiln_weights is open */
  const char* dtype;        /* "f32", "bf16", "f8_e4m3", ... */
  int ndim;
  int64_t shape[KILN_MAX_DIMS];
  uint64_t nbytes;
  const char* file;         /* the file (shard) holding it */
} kiln_tensor_info;

KILN_API kiln_status kiln_weights_open(kiln_runtime* rt, const char* path, kiln_weights** out);
KILN_API void kiln_weights_free(kiln_weights* w);
KILN_API kiln_status kiln_weights_count(const kiln_weights* w, size_t* out);
/* Tensors are listed in name order. */
KILN_API kiln_status kiln_weights_tensor_info(const kiln_weights* w, size_t index,
                                              kiln_tensor_info* out);
/* Reads tensor `name` converted to f32 into out (out_len floats, must equal its numel). */
KILN_API kiln_status kiln_weights_read_f32(const kiln_weights* w, const char* name, float* out,
                                           size_t out_len);

/* ---------------------------------------------------------------- noise */
typedef enum kiln_rng {
  /* torch.randn(shape, generator=torch.Generator().manual_seed(seed)) on the CPU, bit-exact:
   * the initial latent diffusers samples for a seed. */
  KILN_RNG_TORCH_CPU = 0,
  /* torch.randn(..., device="cuda") with a CUDA generator (Philox 4x32-10), the convention of
   * GPU-first UIs; computed on the CPU to float rounding of the GPU's values. */
  KILN_RNG_TORCH_CUDA = 1
} kiln_rng;

typedef struct kiln_noise_params {
  size_t struct_size; /* sizeof(kiln_noise_params) */
  uint64_t seed;
  kiln_rng rng;
  int cuda_sm_count; /* KILN_RNG_TORCH_CUDA: the GPU's SM count (default 132, H100 SXM) */
} kiln_noise_params;

KILN_API kiln_noise_params kiln_noise_default_params(void);
/* Fills out (out_len floats == product of shape) with standard normal noise. */
KILN_API kiln_status kiln_noise_generate(kiln_runtime* rt, const kiln_noise_params* params,
                                         const int64_t* shape, int ndim, float* out,
                                         size_t out_len);

/* ---------------------------------------------------------------- images */
/* Converts a (C, h, w) f32 image tensor (C = 1 or 3) to interleaved 8-bit pixels of out_w x
 * out_h (bilinear resize when the size differs, as torch's interpolate with align_corners=False):
 * value lo maps to 0 and hi to 255, clamped, rounded to nearest — with lo = -1, hi = 1 this is
 * diffusers' VaeImageProcessor postprocess ((x / 2 + 0.5).clamp(0, 1) * 255, rounded).
 * pixels holds out_w * out_h * C bytes. */
KILN_API kiln_status kiln_image_from_tensor(kiln_runtime* rt, const float* data, int channels,
                                            int h, int w, float lo, float hi, int out_w,
                                            int out_h, uint8_t* pixels, size_t pixels_size);
/* Reads a PNG/JPEG/BMP/TGA file as 8-bit pixels with `channels` (1, 3 or 4) channels; free the
 * buffer with kiln_image_free. KILN_ERR_NOT_FOUND / KILN_ERR_FORMAT name the file. */
KILN_API kiln_status kiln_image_load(const char* path, int channels, uint8_t** pixels, int* width,
                                     int* height);
KILN_API void kiln_image_free(uint8_t* pixels);
/* Writes 8-bit pixels as PNG, atomically (never a partial file at `path`), with optional tEXt
 * chunks (n_text key/value pairs, e.g. the generation parameters). */
KILN_API kiln_status kiln_image_write_png(const char* path, const uint8_t* pixels, int width,
                                          int height, int channels, const char* const* text_keys,
                                          const char* const* text_values, size_t n_text);

/* ---------------------------------------------------------------- models and rendering */
/* A loaded generation pipeline: a diffusers folder (model_index.json). Immutable once loaded;
 * several threads may render with one model concurrently, each with its own params. */
typedef struct kiln_model kiln_model;

/* The family of a diffusers folder from its model_index.json, without loading any weights:
 * writes "sd1", "sdxl", "sd3" or "flux" into buf. KILN_ERR_UNSUPPORTED for other pipelines. */
KILN_API kiln_status kiln_detect_family(const char* path, char* buf, size_t buf_size);
/* What an original-layout single-file checkpoint (SD1/SD2/SDXL, Flux, SD3) holds, as text:
 * family, variant, each component's class, tensor and parameter counts, dtypes, detected config
 * and notes. KILN_ERR_FORMAT when the file is not a checkpoint kiln recognises. */
KILN_API kiln_status kiln_checkpoint_describe(const char* path, char* buf, size_t buf_size);
KILN_API kiln_status kiln_model_load(kiln_runtime* rt, const char* path, kiln_model** out);

typedef struct kiln_model_load_params {
  size_t struct_size; /* sizeof(kiln_model_load_params) */
  /* Where the weights live and every render of the model runs: "cpu" (NULL = "cpu"), "cuda"
   * (= "cuda:0") or "cuda:N". The initial noise is drawn on the CPU (the same bits on every
   * device) and the images come back to the host. */
  const char* device;
} kiln_model_load_params;
KILN_API kiln_model_load_params kiln_model_load_default_params(void);
/* kiln_model_load on a device (params NULL = the defaults: the CPU). An unparsable device
 * string is KILN_ERR_INVALID_ARGUMENT ("unknown device 'gpu' (expected cpu, cuda or cuda:N)"),
 * and so is a CUDA index beyond the visible devices ("device cuda:7 does not exist (1 cuda
 * device(s) present)"), both before any weight is read (a build without CUDA, or a machine
 * without a driver, has 0 CUDA devices). */
KILN_API kiln_status kiln_model_load_with_params(kiln_runtime* rt, const char* path,
                                                 const kiln_model_load_params* params,
                                                 kiln_model** out);
KILN_API void kiln_model_free(kiln_model* m);
/* "sd1", "sdxl", "sd3" or "flux"; valid while the model is loaded. */
KILN_API const char* kiln_model_family(const kiln_model* m);
/* The device the model was loaded on: "cpu", "cuda:0", ...; valid while the model is loaded. */
KILN_API const char* kiln_model_device(const kiln_model* m);

typedef struct kiln_model_defaults {
  size_t struct_size; /* sizeof(kiln_model_defaults) */
  int width, height, steps;
  float guidance_scale;
  const char* sampler; /* valid while the model is loaded */
  int size_multiple;   /* width and height must be multiples of this */
} kiln_model_defaults;
KILN_API kiln_status kiln_model_get_defaults(const kiln_model* m, kiln_model_defaults* out);

/* NULL-terminated lists of the sampler and schedule names kiln_render_params accepts. */
KILN_API const char* const* kiln_sampler_names(void);
KILN_API const char* const* kiln_schedule_names(void);

/* Called after each sampling step; return nonzero to cancel (kiln_render then returns
 * KILN_ERR_CANCELLED before the next model evaluation). */
typedef int (*kiln_progress_callback)(int step, int total, void* user_data);

typedef struct kiln_render_params {
  size_t struct_size; /* sizeof(kiln_render_params) */
  const char* prompt;
  const char* negative_prompt; /* NULL = "" */
  int width, height;           /* 0 = model default */
  int steps;                   /* 0 = model default */
  float guidance_scale;        /* < 0 = model default; <= 1 disables classifier-free guidance */
  uint64_t seed;
  int batch;                   /* images for the prompt; 0 = 1 */
  const char* sampler;         /* NULL = model default; see kiln_sampler_names() */
  const char* schedule;        /* NULL = "default"; see kiln_schedule_names() */
  float eta;                   /* DDIM eta */
  kiln_progress_callback progress;
  void* user_data;
  /* img2img / inpainting (optional). init_image: 8-bit RGB, interleaved, init_width x
   * init_height; the output then has its size (width/height must be 0 or equal). */
  const uint8_t* init_image;
  int init_width, init_height;
  double strength; /* (0, 1]; 0 = default: 0.8 for img2img, 1.0 with a mask */
  const uint8_t* mask; /* 8-bit, one channel, init size; >= 128 = repaint (diffusers binarizes at 0.5) */
} kiln_render_params;

KILN_API kiln_render_params kiln_render_default_params(void);

/* The images of one render, 8-bit RGB, interleaved. */
typedef struct kiln_images kiln_images;
KILN_API kiln_status kiln_render(kiln_model* m, const kiln_render_params* params,
                                 kiln_images** out);
KILN_API size_t kiln_images_count(const kiln_images* images);
KILN_API kiln_status kiln_images_get(const kiln_images* images, size_t index, int* width,
                                     int* height, int* channels, const uint8_t** pixels);
KILN_API void kiln_images_free(kiln_images* images);

/* ---------------------------------------------------------------- components */
/* Runs the model component in `component_dir` (its config.json picks the class: U-Net, VAE,
 * CLIP, T5, SD3 or Flux transformer) on the tensors of the safetensors file `inputs`, named as the
 * reference forward's arguments (with `prefix` prepended when not NULL), and writes its outputs to
 * `outputs` (atomically). `mode`: "encode" or "decode" (default) for a VAE, else NULL. */
KILN_API kiln_status kiln_component_run(kiln_runtime* rt, const char* component_dir,
                                        const char* inputs, const char* outputs,
                                        const char* prefix, const char* mode);

/* ---------------------------------------------------------------- benchmarks */
/* Runs one benchmark workload and writes its result as JSON into result_json (result_size
 * bytes; KILN_ERR_INVALID_ARGUMENT naming the size needed when too small). spec_json:
 *   {"workload": "attention", "device": "cuda:0", "dtype": "bf16", "warmup": 3, "iters": 10,
 *    "params": {"heads": 24, "seq": 4608}}
 * workload: "attention", "gemm", "conv2d", "unet-sd15", "unet-sdxl" or "flux" (components at
 * their released configs with random weights); every other field is optional (dtype: bf16 on
 * CUDA, f32 on the CPU). The result holds the resolved parameters, per-iteration times,
 * median/min ms, TFLOP/s (ops) and peak memory; 1 MiB always holds it (iters <= 10000). A
 * workload the device cannot run fails with the op's own status (KILN_ERR_UNSUPPORTED naming
 * the op) and message. */
KILN_API kiln_status kiln_bench_run(kiln_runtime* rt, const char* spec_json, char* result_json,
                                    size_t result_size);
/* The workloads and their parameters with defaults, as a JSON object
 * {"attention": {"batch": 1, ...}, ...}. */
KILN_API kiln_status kiln_bench_workloads(char* buf, size_t buf_size);

/* ---------------------------------------------------------------- tensor files */
/* Writes f32 tensors to a .safetensors file atomically. shapes: n arrays of ndims[i] dims. */
KILN_API kiln_status kiln_safetensors_write_f32(const char* path, size_t n, const char* const* names,
                                                const float* const* data, const int* ndims,
                                                const int64_t* const* shapes);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
