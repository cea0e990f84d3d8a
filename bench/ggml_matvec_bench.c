// ggml_matvec_bench: ggml's CPU matrix product of one weight (ROWS x COLS, in TYPE) with
// K = 1 and K = 8 activation rows, timed through ggml's public API with a persistent
// thread pool, for side-by-side comparison with dspark_kernels_bench (bench/compare_ggml.sh
// builds and runs it; it is not part of the dspark build). As in dspark_kernels_bench the
// weights rotate over copies totalling >= 256 MiB so they come from DRAM. Rounds alternate
// K = 1 and K = 8; prints medians (and the best round).
//
//   ggml_matvec_bench TYPE [ROWS COLS THREADS SECONDS [repack]]
//   TYPE: f32 f16 bf16 q8_0 q4_0 q4_K q6_K
// "repack" stores the weights in the CPU backend's repacking buffer (interleaved rows, as
// llama.cpp does by default for the types that have such a layout: on x86 with AVX2, q4_0
// and q4_K) and runs through the backend; otherwise the plain ggml_graph_compute path and
// plain layouts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

enum { kMaxCopies = 64 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double median(double* v, int n) {  // sorts v
  qsort(v, (size_t)n, sizeof(double), cmp);
  return v[n / 2];
}

static unsigned long long rng = 88172645463325252ull;
static float noise(void) {  // roughly Gaussian; values do not matter for speed
  float s = 0;
  for (int i = 0; i < 4; ++i) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    s += (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
  }
  return s;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TYPE [ROWS COLS THREADS SECONDS [repack]]\n", argv[0]);
    return 2;
  }
  const char* names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q6_K"};
  const enum ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                  GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
  int ti = -1;
  for (int i = 0; i < 7; ++i)
    if (strcmp(argv[1], names[i]) == 0) ti = i;
  if (ti < 0) {
    fprintf(stderr, "unknown type %s\n", argv[1]);
    return 2;
  }
  const enum ggml_type type = types[ti];
  const int64_t rows = argc > 2 ? atoll(argv[2]) : 4096, cols = argc > 3 ? atoll(argv[3]) : 14336;
  const int threads = argc > 4 ? atoi(argv[4]) : 2;
  const double seconds = argc > 5 ? atof(argv[5]) : 3.0;
  const int repack = argc > 6 && strcmp(argv[6], "repack") == 0;
  const int K[2] = {1, 8};
  if (repack && type != GGML_TYPE_Q4_0 && type != GGML_TYPE_Q4_K) {
    fprintf(stderr, "repack: only q4_0 and q4_K have an x86 repacked layout\n");
    return 2;
  }

  const size_t row_size = ggml_row_size(type, cols), wbytes = row_size * (size_t)rows;
  int copies = (int)(((size_t)256 << 20) / wbytes) + 1;
  if (copies < 2) copies = 2;
  if (copies > kMaxCopies) copies = kMaxCopies;

  // One weight's bytes in ggml's plain layout.
  char* plain = malloc(wbytes);
  float* row = malloc(sizeof(float) * (size_t)cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < cols; ++i) row[i] = noise();
    if (type == GGML_TYPE_F32)
      memcpy(plain + (size_t)r * row_size, row, row_size);
    else
      ggml_quantize_chunk(type, row, plain + (size_t)r * row_size, 0, 1, cols, NULL);
  }

  struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
  struct ggml_threadpool* tp = ggml_threadpool_new(&tpp);
  struct ggml_tensor* w[kMaxCopies];
  struct ggml_tensor* x[2];
  struct ggml_cgraph* graphs[2][kMaxCopies];
  struct ggml_cplan plan[2];
  ggml_backend_t backend = NULL;

  if (repack) {
    backend = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend, threads);
    ggml_backend_cpu_set_threadpool(backend, tp);
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_dev_get_extra_bufts_t get_extra =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
            reg, "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t buft = NULL;
    for (ggml_backend_buffer_type_t* b = get_extra ? get_extra(dev) : NULL; b && *b; ++b)
      if (strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) buft = *b;
    if (!buft) {
      fprintf(stderr, "this ggml has no CPU_REPACK buffer type\n");
      return 1;
    }
    struct ggml_init_params wp = {ggml_tensor_overhead() * kMaxCopies, NULL, true};
    struct ggml_context* wctx = ggml_init(wp);
    for (int c = 0; c < copies; ++c) w[c] = ggml_new_tensor_2d(wctx, type, cols, rows);
    if (!ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft)) return 1;
    for (int c = 0; c < copies; ++c) ggml_backend_tensor_set(w[c], plain, 0, wbytes);

    struct ggml_init_params gp = {
        ggml_tensor_overhead() * (2 * kMaxCopies + 8) + ggml_graph_overhead() * (2 * kMaxCopies + 2), NULL,
        true};
    struct ggml_context* gctx = ggml_init(gp);
    for (int k = 0; k < 2; ++k) {
      x[k] = ggml_new_tensor_2d(gctx, GGML_TYPE_F32, cols, K[k]);
      for (int c = 0; c < copies; ++c) {
        graphs[k][c] = ggml_new_graph(gctx);
        ggml_build_forward_expand(graphs[k][c], ggml_mul_mat(gctx, w[c], x[k]));
      }
    }
    if (!ggml_backend_alloc_ctx_tensors_from_buft(gctx, ggml_backend_cpu_buffer_type())) return 1;
    for (int k = 0; k < 2; ++k) {
      float* xs = malloc(sizeof(float) * (size_t)(cols * K[k]));
      for (int64_t i = 0; i < cols * K[k]; ++i) xs[i] = noise();
      ggml_backend_tensor_set(x[k], xs, 0, sizeof(float) * (size_t)(cols * K[k]));
      free(xs);
    }
  } else {
    const size_t mem = (size_t)copies * (wbytes + 4096) + 2 * (size_t)cols * 8 * 4 + ((size_t)64 << 20);
    struct ggml_init_params ip = {mem, NULL, false};
    struct ggml_context* ctx = ggml_init(ip);
    for (int c = 0; c < copies; ++c) {
      w[c] = ggml_new_tensor_2d(ctx, type, cols, rows);
      memcpy(w[c]->data, plain, wbytes);
    }
    for (int k = 0; k < 2; ++k) {
      x[k] = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cols, K[k]);
      for (int64_t i = 0; i < cols * K[k]; ++i) ((float*)x[k]->data)[i] = noise();
      for (int c = 0; c < copies; ++c) {
        graphs[k][c] = ggml_new_graph(ctx);
        ggml_build_forward_expand(graphs[k][c], ggml_mul_mat(ctx, w[c], x[k]));
      }
      plan[k] = ggml_graph_plan(graphs[k][0], threads, tp);
      plan[k].work_data = malloc(plan[k].work_size + 64);
    }
  }

  enum { kCap = 100000 };
  static double t[2][kCap];
  int n = 0, c = 0;
  for (int i = 0; i < 2 * copies + 2; ++i) {  // warm-up
    if (repack)
      ggml_backend_graph_compute(backend, graphs[i & 1][i % copies]);
    else
      ggml_graph_compute(graphs[i & 1][i % copies], &plan[i & 1]);
  }
  const double start = now();
  while (now() - start < seconds && n < kCap) {
    for (int k = 0; k < 2; ++k) {
      c = (c + 1) % copies;
      const double t0 = now();
      if (repack)
        ggml_backend_graph_compute(backend, graphs[k][c]);
      else
        ggml_graph_compute(graphs[k][c], &plan[k]);
      t[k][n] = now() - t0;
    }
    ++n;
  }
  const double m1 = median(t[0], n), m8 = median(t[1], n), b1 = t[0][0], b8 = t[1][0];
  printf(
      "ggml%s %s %lldx%lld threads %d: K=1 %.3f ms %.2f GB/s, K=8 %.3f ms, K=8/K=1 %.2f (%d rounds, %d "
      "copies);"
      " best K=1 %.2f GB/s, K=8/K=1 %.2f\n",
      repack ? "-repack" : "", names[ti], (long long)rows, (long long)cols, threads, m1 * 1e3,
      (double)wbytes / m1 / 1e9, m8 * 1e3, m8 / m1, n, copies, (double)wbytes / b1 / 1e9, b8 / b1);
  ggml_threadpool_free(tp);
  return 0;
}
