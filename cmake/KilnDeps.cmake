# Finds kiln's dependencies. Every optional part can be switched off so that a machine with only
# a compiler (and optionally the CUDA toolkit) still builds the core, the kernels and the tests.

# ---- CUDA ----
set(KILN_HAVE_CUDA OFF)
if(NOT KILN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${KILN_CUDA_ARCHS})
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(KILN_HAVE_CUDA ON)
  elseif(KILN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KILN_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()

# ---- cuDNN 9 (CUDA convolutions) ----
# Not a CMake target of the toolkit (no CUDA::cudnn): found by path. Looked for under
# CUDNN_ROOT (cache or environment; e.g. the pip package nvidia-cudnn-cu13's directory, where
# only libcudnn.so.9 exists) and the toolkit. Without it, CUDA convs are `unsupported`.
set(KILN_HAVE_CUDNN OFF)
if(KILN_HAVE_CUDA AND NOT KILN_CUDNN STREQUAL "OFF")
  find_path(KILN_CUDNN_INCLUDE_DIR cudnn.h
    HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(KILN_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
    HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(KILN_CUDNN_INCLUDE_DIR AND KILN_CUDNN_LIBRARY)
    add_library(kiln_cudnn UNKNOWN IMPORTED)
    set_target_properties(kiln_cudnn PROPERTIES IMPORTED_LOCATION ${KILN_CUDNN_LIBRARY}
                                                INTERFACE_INCLUDE_DIRECTORIES ${KILN_CUDNN_INCLUDE_DIR})
    set(KILN_HAVE_CUDNN ON)
  elseif(KILN_CUDNN STREQUAL "ON")
    message(FATAL_ERROR "KILN_CUDNN=ON but cudnn.h / libcudnn were not found (set CUDNN_ROOT)")
  endif()
endif()

# ---- OpenMP ----
set(KILN_HAVE_OPENMP OFF)
if(KILN_OPENMP)
  find_package(OpenMP)
  if(OpenMP_CXX_FOUND)
    set(KILN_HAVE_OPENMP ON)
  endif()
endif()

# ---- CPU GEMM libraries ----
# Both are compiled in when installed; KILN_BLAS names the default (see docs/perf.md for the
# measurement behind the choice) and ops::set_gemm_backend switches at run time.
set(KILN_HAVE_OPENBLAS OFF)
set(KILN_HAVE_DNNL OFF)
if(KILN_OPENBLAS)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS)
  find_path(KILN_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread)
  if(BLAS_FOUND AND KILN_CBLAS_INCLUDE)
    set(KILN_HAVE_OPENBLAS ON)
  endif()
endif()
if(KILN_ONEDNN)
  find_package(dnnl CONFIG QUIET)
  if(dnnl_FOUND)
    set(KILN_HAVE_DNNL ON)
  endif()
endif()
if(KILN_BLAS STREQUAL "OpenBLAS" AND NOT KILN_HAVE_OPENBLAS)
  message(WARNING "KILN_BLAS=OpenBLAS but OpenBLAS was not found (apt install libopenblas-dev)")
elseif(KILN_BLAS STREQUAL "oneDNN" AND NOT KILN_HAVE_DNNL)
  message(WARNING "KILN_BLAS=oneDNN but oneDNN was not found (apt install libdnnl-dev ocl-icd-opencl-dev)")
endif()

# ---- stb ----
set(KILN_HAVE_STB OFF)
if(KILN_STB)
  find_path(KILN_STB_INCLUDE stb/stb_image.h)
  if(KILN_STB_INCLUDE)
    set(KILN_HAVE_STB ON)
  else()
    message(WARNING "stb headers not found (apt install libstb-dev): PNG output disabled")
  endif()
endif()

# ---- sentencepiece (the T5 tokenizer of SD3/Flux) ----
option(KILN_SENTENCEPIECE "T5 tokenizer through libsentencepiece (Debian libsentencepiece-dev)" ON)
set(KILN_HAVE_SENTENCEPIECE OFF)
if(KILN_SENTENCEPIECE)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(SENTENCEPIECE QUIET IMPORTED_TARGET sentencepiece)
  endif()
  if(SENTENCEPIECE_FOUND)
    set(KILN_HAVE_SENTENCEPIECE ON)
  else()
    message(WARNING "sentencepiece not found (apt install libsentencepiece-dev): T5 tokenizer disabled")
  endif()
endif()

# ---- header-only / test deps ----
find_package(nlohmann_json 3 REQUIRED)
if(KILN_APPS)
  find_package(CLI11 CONFIG REQUIRED)
endif()
if(KILN_TESTS)
  find_package(GTest REQUIRED)
endif()
if(KILN_BENCH)
  find_package(benchmark CONFIG)
  if(NOT benchmark_FOUND)
    message(WARNING "Google Benchmark not found: benchmarks disabled")
    set(KILN_BENCH OFF)
  endif()
endif()
