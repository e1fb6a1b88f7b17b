/* ek_gemm.c — AVX-512 SGEMM kernels for skinny im2col-conv shapes (see ek_gemm.h).
 *
 * Only the kernel functions carry the AVX-512 target attribute, so the file
 * compiles without -mavx512f and the rest of the binary stays portable.
 */
#include "ek_gemm.h"

/* The flipped, transposed 3x3 kernel of a conv's input gradient: wf[ci][co*9 + 8 - t] = w[co][ci][t]. Written
 * in order (ci outer) with strided 36-byte reads: for the 960->480 decoder conv (16.6 MB each way, beyond L2)
 * 6.4 ms against 9.1 for the co-major order and 10-14 for 16 x 16 channel blocks (tested in isolation). Any CPU. */
void ek_flip3x3(int cout, int cin, const float *w, float *wf) {
    for (int ci = 0; ci < cin; ci++) {
        float *d = wf + (size_t)ci * cout * 9;
        const float *s = w + (size_t)ci * 9;
        for (int co = 0; co < cout; co++, d += 9, s += (size_t)cin * 9) {
            d[0] = s[8]; d[1] = s[7]; d[2] = s[6]; d[3] = s[5]; d[4] = s[4];
            d[5] = s[3]; d[6] = s[2]; d[7] = s[1]; d[8] = s[0];
        }
    }
}

#if !defined(__x86_64__)
/* Not x86-64: no kernels; ek_avx512_available() says so and the Swift side uses OpenBLAS for everything. */
int ek_avx512_available(void) { return 0; }
void ek_sgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}
void ek_sgemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}
void ek_sgemm_nn_rows(int M, int N, int K, const float *A, int lda, const float *B, const int *boff, float beta, float *C, int ldc) {
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)boff; (void)beta; (void)C; (void)ldc;
}
void ek_sgemm_nn_arows(int M, int N, int K, const float *A, const int *aoff, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)M; (void)N; (void)K; (void)A; (void)aoff; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}
void ek_adamw(long n, float *p, const float *g, float *m, float *v, float b1, float a1, float b2, float a2, float decay,
              float step, float inv_bc2_sqrt, float eps) {
    (void)n; (void)p; (void)g; (void)m; (void)v; (void)b1; (void)a1; (void)b2; (void)a2; (void)decay; (void)step;
    (void)inv_bc2_sqrt; (void)eps;
}
void ek_inorm_apply(long n, const float *y, float *a, float g, float b, float slope) {
    (void)n; (void)y; (void)a; (void)g; (void)b; (void)slope;
}
void ek_inorm_bwd_sums(long n, const float *y, const float *d, float mean, float rstd, float gam, float bet, float slope,
                       double *sum_dz, double *sum_dzx) {
    (void)n; (void)y; (void)d; (void)mean; (void)rstd; (void)gam; (void)bet; (void)slope; (void)sum_dz; (void)sum_dzx;
}
void ek_inorm_bwd_apply(long n, float *y, const float *d, float mean, float rstd, float gam, float bet, float slope,
                        float k, float mdz, float mdzx) {
    (void)n; (void)y; (void)d; (void)mean; (void)rstd; (void)gam; (void)bet; (void)slope; (void)k; (void)mdz; (void)mdzx;
}
void ek_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}
void ek_phase_row(const float *row, int w, float *even, float *odd, int wp) {
    for (int u = 0; u < wp; u++) {
        even[u] = 2 * u < w ? row[2 * u] : 0.0f;
        odd[u] = (u >= 1 && 2 * u - 1 < w) ? row[2 * u - 1] : 0.0f;
    }
}
void ek_col2im3x3(const float *dcol, int ld, int channels, int h, int w, int stride, float *dx, int row_start, int row_count) {
    (void)dcol; (void)ld; (void)channels; (void)h; (void)w; (void)stride; (void)dx; (void)row_start; (void)row_count;
}
void ek_im2col3x3(const float *x, int channels, int h, int w, int stride, float *col, int ld, int row_start, int row_count) {
    (void)x; (void)channels; (void)h; (void)w; (void)stride; (void)col; (void)ld; (void)row_start; (void)row_count;
}
#else

#include <immintrin.h>
#include <stdint.h>

#define EK_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define EK_INLINE static inline __attribute__((always_inline))

/* The load/store mask of a 16-lane step with `rem` elements left: all lanes, or the low rem. */
EK_INLINE __mmask16 ek_lanes(long rem) { return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u); }

int ek_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
}

/* ------------------------------------------------------------------------ */
/* NN: C += A * B.  Micro-tile = R rows x 16*W columns, up to 24 zmm         */
/* accumulators: 8 x 48 for wide B (3 B loads + 8 broadcasts of A, read in   */
/* place, feed 24 FMAs; packing A measured no faster), 6 x 64 when N is a   */
/* multiple of 64 up to 256 (nn_strip), 12 x 32 and 12 x 16 for narrow       */
/* remainders. B rows stream from the caller's buffer.                        */
/* ------------------------------------------------------------------------ */

#define NN_MR 12 /* most rows of any tile (narrow strips); 8 for 48 columns, 6 for 64 */
#define NN_NR 48
#define NN_WMAX 4
/* Rows per tile for a strip of w vectors: the accumulators (rows x w) stay within 24 of the 32 zmm registers. */
static inline int nn_rows_for(int w) { return w >= 4 ? 6 : (w == 3 ? 8 : 12); }
#ifndef NN_KC_MAX
#define NN_KC_MAX 128 /* B strip (KC x 48 or 64 floats = 24 or 32 KB) stays in L1 across the row blocks */
#endif
#ifndef NN_MC
#define NN_MC 4096 /* row chunk (all rows of a strip reuse it from L1; a smaller chunk measured slower) */
#endif
#ifndef NN_NC
#define NN_NC 384 /* column panel: the C panel (NN_MC x NN_NC) stays in L2 across K blocks */
#endif
#ifndef NN_PF
#define NN_PF 8 /* software prefetch distance in B rows (strides > 2 KB defeat the HW prefetcher) */
#endif

/* One R x (16*W) tile over kc steps. The last of the W vectors is masked when MASKED. */
/* ROWS: B row k starts at B + off[k] (the implicit-im2col form: rows are shifted views of one padded input) instead
 * of B + k*ldb; the next strip's rows likewise at nx + nxoff[k]. */
/* AROWS: A's row r of this tile starts at ar[r] (already at the K block) instead of ap + r*lda. */
EK_TARGET EK_INLINE void nn_tile(const int ROWS, const int AROWS, const int R, const int W, const int MASKED, int kc,
                                 const float *ap, int lda, const float *const *ar, const float *B, int ldb,
                                 const int *off, float *C, int ldc, int load_c, __mmask16 ml, int pf, const float *nx,
                                 const int *nxoff, int nx_rows, int nx_lines) {
    const float *arow[NN_MR];
    if (AROWS)
        for (int r = 0; r < R; r++)
            arow[r] = ar[r];
    __m512 acc[NN_MR][NN_WMAX];
    for (int r = 0; r < R; r++) {
        for (int w = 0; w < W; w++) {
            const float *c = C + (size_t)r * ldc + 16 * w;
            if (!load_c)
                acc[r][w] = _mm512_setzero_ps();
            else if (MASKED && w == W - 1)
                acc[r][w] = _mm512_maskz_loadu_ps(ml, c);
            else
                acc[r][w] = _mm512_loadu_ps(c);
        }
    }
    const float *b = B;
    for (int k = 0; k < kc; k++) {
        if (ROWS)
            b = B + off[k];
        __m512 bv[NN_WMAX];
        for (int w = 0; w < W; w++) {
            if (MASKED && w == W - 1)
                bv[w] = _mm512_maskz_loadu_ps(ml, b + 16 * w);
            else
                bv[w] = _mm512_loadu_ps(b + 16 * w);
        }
        if (pf) {
            /* Only the first row block of a strip pulls B in: L2 -> L1 a few rows ahead
             * (strides > 2 KB defeat the HW prefetcher), and the next strip memory -> L2. */
            if (k + NN_PF < kc) {
                const char *p = (const char *)(ROWS ? B + off[k + NN_PF] : b + (size_t)NN_PF * ldb);
                for (int w = 0; w < W; w++)
                    _mm_prefetch(p + 64 * w, _MM_HINT_T0);
            }
            if (k < nx_rows) {
                const char *p = (const char *)(ROWS ? nx + nxoff[k] : nx + (size_t)k * ldb);
                for (int w = 0; w < nx_lines; w++)
                    _mm_prefetch(p + 64 * w, _MM_HINT_T1);
            }
        }
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(AROWS ? arow[r][k] : ap[(size_t)r * lda]);
            for (int w = 0; w < W; w++)
                acc[r][w] = _mm512_fmadd_ps(a, bv[w], acc[r][w]);
        }
        ap += 1;
        if (!ROWS)
            b += ldb;
    }
    for (int r = 0; r < R; r++) {
        for (int w = 0; w < W; w++) {
            float *c = C + (size_t)r * ldc + 16 * w;
            if (MASKED && w == W - 1)
                _mm512_mask_storeu_ps(c, ml, acc[r][w]);
            else
                _mm512_storeu_ps(c, acc[r][w]);
        }
    }
}

/* Dispatch on the runtime row count R (1..W_ROWS) to a fully unrolled tile. */
/* pf is made a compile-time constant: the tiles after a strip's first (most of them) then carry no prefetch
 * tests in their k loop. */
#define EK_NN_CASE(RR)                                                                                             \
    case RR:                                                                                                           \
        if (pf)                                                                                                        \
            nn_tile(ROWS, AROWS, RR, W, MASKED, kc, ap, lda, ar, B, ldb, off, C, ldc, load_c, ml, 1, nx, nxoff, nxr, nxl); \
        else                                                                                                           \
            nn_tile(ROWS, AROWS, RR, W, MASKED, kc, ap, lda, ar, B, ldb, off, C, ldc, load_c, ml, 0, nx, nxoff, nxr, nxl); \
        break;
#define EK_NN_VARIANT(NAME, ROWS_, AROWS_, W_, MASKED_, W_ROWS)                                                        \
    EK_TARGET static void NAME(int R, int kc, const float *ap, int lda, const float *const *ar, const float *B,       \
                               int ldb, const int *off, float *C, int ldc, int load_c, __mmask16 ml, int pf,           \
                               const float *nx, const int *nxoff, int nxr, int nxl) {                                  \
        const int ROWS = ROWS_, AROWS = AROWS_, W = W_, MASKED = MASKED_;                                              \
        switch (R > W_ROWS ? W_ROWS : R) {                                                                             \
            EK_NN_CASES_##W_ROWS                                                                                       \
            EK_NN_CASE(6) EK_NN_CASE(5) EK_NN_CASE(4) EK_NN_CASE(3) EK_NN_CASE(2)                                      \
            default: EK_NN_CASE(1)                                                                                     \
        }                                                                                                              \
    }
#define EK_NN_CASES_6
#define EK_NN_CASES_8 EK_NN_CASE(8) EK_NN_CASE(7)
#define EK_NN_CASES_12 EK_NN_CASE(12) EK_NN_CASE(11) EK_NN_CASE(10) EK_NN_CASE(9) EK_NN_CASES_8

/* Each mode (strided, B row offsets, A row offsets) in the tile widths: 48 and 64 columns, and 16/32/48/64 masked;
 * each width with its most rows (W_ROWS must be nn_rows_for(W)). */
#define EK_NN_MODE(P, ROWS_, AROWS_)                                                                                   \
    EK_NN_VARIANT(P##_full, ROWS_, AROWS_, 3, 0, 8)                                                                    \
    EK_NN_VARIANT(P##_full4, ROWS_, AROWS_, 4, 0, 6)                                                                   \
    EK_NN_VARIANT(P##_tail1, ROWS_, AROWS_, 1, 1, 12)                                                                  \
    EK_NN_VARIANT(P##_tail2, ROWS_, AROWS_, 2, 1, 12)                                                                  \
    EK_NN_VARIANT(P##_tail3, ROWS_, AROWS_, 3, 1, 8)                                                                   \
    EK_NN_VARIANT(P##_tail4, ROWS_, AROWS_, 4, 1, 6)

EK_NN_MODE(nn, 0, 0)
EK_NN_MODE(nn_rows, 1, 0)
EK_NN_MODE(nn_arows, 0, 1)

typedef void (*ek_nn_fn)(int, int, const float *, int, const float *const *, const float *, int, const int *, float *,
                         int, int, __mmask16, int, const float *, const int *, int, int);

/* Splits n into the fewest blocks of at most max, of near-equal size rounded up to a multiple of q. */
static int ek_block(int n, int max, int q) {
    int nb = (n + max - 1) / max;
    int b = (n + nb - 1) / nb;
    b = (b + q - 1) / q * q;
    return b > max ? max : b;
}

/* Columns per strip: 48, or 64 when N is 64, 128, 192 or 256 (the weight-gradient products, whose N is Cout and
 * whose M, 9 Cin, is large): 6 x 64 tiles take 4 B vectors per k instead of 3 (+ 1 masked) and a quarter fewer A
 * broadcasts per FMA. Measured on the implicit-im2col dW shapes: Cout 64 +25%, Cout 128 and 256 +6-8%. With the
 * forward's small M (32..128 rows, multiples of 8) the 8-row tiles fit better. */
#ifndef NN_WIDE_MAX
#define NN_WIDE_MAX 256
#endif
static inline int nn_strip(int n) { return (n % 64 == 0 && n <= NN_WIDE_MAX) ? 64 : NN_NR; }

/* boff non-NULL: B row k is B + boff[k] (ldb unused). aoff non-NULL: A row i is A + aoff[i] (lda unused); not both. */
EK_TARGET static void nn_core(int M, int N, int K, const float *A, int lda, const int *aoff, const float *B, int ldb,
                              const int *boff, float beta, float *C, int ldc) {
    const ek_nn_fn full = boff ? nn_rows_full : (aoff ? nn_arows_full : nn_full),
                   full4 = boff ? nn_rows_full4 : (aoff ? nn_arows_full4 : nn_full4),
                   t1 = boff ? nn_rows_tail1 : (aoff ? nn_arows_tail1 : nn_tail1),
                   t2 = boff ? nn_rows_tail2 : (aoff ? nn_arows_tail2 : nn_tail2),
                   t3 = boff ? nn_rows_tail3 : (aoff ? nn_arows_tail3 : nn_tail3),
                   t4 = boff ? nn_rows_tail4 : (aoff ? nn_arows_tail4 : nn_tail4);
    const float *ar[NN_MR] = {0};
    const int kcb = ek_block(K, NN_KC_MAX, 8);
    const int nr = nn_strip(N); /* N <= NN_WIDE_MAX < NN_NC when 64: one panel */
    /* Column panels outermost: the C panel stays in L2 across the K blocks, and each
     * B strip of a K block is reused from L1 by every row block. */
    for (int j0 = 0; j0 < N; j0 += NN_NC) {
        const int nc = N - j0 < NN_NC ? N - j0 : NN_NC;
        for (int i0 = 0; i0 < M; i0 += NN_MC) {
            const int mc = M - i0 < NN_MC ? M - i0 : NN_MC;
            for (int k0 = 0; k0 < K; k0 += kcb) {
                const int kc = K - k0 < kcb ? K - k0 : kcb;
                const int load_c = (k0 > 0) || (beta != 0.0f);
                const float *bk = boff ? B : B + (size_t)k0 * ldb;
                const int *offk = boff ? boff + k0 : NULL;
                for (int jb = j0; jb < j0 + nc; jb += nr) {
                    const int rem = j0 + nc - jb;
                    /* The strip processed after this one, prefetched into L2 during this one. */
                    int nj = jb + nr, nk = k0, nend = j0 + nc;
                    if (nj >= nend) {
                        nj = j0;
                        nk = k0 + kc;
                        if (nk >= K) {
                            nj = j0 + nc;
                            nk = 0;
                            nend = N - nj < NN_NC ? N : nj + NN_NC;
                        }
                    }
                    const float *nx = B;
                    const int *nxoff = boff;
                    int nxr = 0, nxl = 0;
                    if (nj < N) {
                        const int nw = nend - nj < nr ? nend - nj : nr;
                        nx = boff ? B + nj : B + (size_t)nk * ldb + nj;
                        nxoff = boff ? boff + nk : NULL;
                        nxr = K - nk < kcb ? K - nk : kcb;
                        nxl = (nw + 15) / 16;
                    }
                    const int W = rem >= nr ? nr / 16 : (rem + 15) / 16;
                    const int masked = rem < nr;
                    const __mmask16 ml = masked ? (__mmask16)((1u << (rem - 16 * (W - 1))) - 1u) : (__mmask16)0xFFFF;
                    const ek_nn_fn tile = !masked ? (W == 4 ? full4 : full)
                                                  : (W == 1 ? t1 : (W == 2 ? t2 : (W == 3 ? t3 : t4)));
                    const int mr = nn_rows_for(W);
                    for (int rb = 0; rb < mc; rb += mr) {
                        const int R = mc - rb < mr ? mc - rb : mr;
                        const float *apr = aoff ? A : A + (size_t)(i0 + rb) * lda + k0;
                        if (aoff)
                            for (int r = 0; r < R; r++)
                                ar[r] = A + aoff[i0 + rb + r] + k0;
                        float *c = C + (size_t)(i0 + rb) * ldc + jb;
                        tile(R, kc, apr, lda, ar, bk + jb, ldb, offk, c, ldc, load_c, ml, rb == 0, nx, nxoff, nxr, nxl);
                    }
                }
            }
        }
    }
}

EK_TARGET void ek_sgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    /* B rows are streamed with 64-byte loads; if B's base is not 64-byte aligned every
     * load splits two cache lines (measured ~30% slower). When all rows share one
     * alignment (ldb % 16 == 0), peel the first few columns so the rest is aligned. */
    const unsigned mis = (unsigned)(((uintptr_t)B >> 2) & 15u);
    const int head = (ldb % 16 == 0 && ((uintptr_t)B & 3u) == 0 && mis != 0) ? (int)(16u - mis) : 0;
    if (head > 0 && head < N) {
        nn_core(M, head, K, A, lda, NULL, B, ldb, NULL, beta, C, ldc);
        nn_core(M, N - head, K, A, lda, NULL, B + head, ldb, NULL, beta, C + head, ldc);
    } else {
        nn_core(M, N, K, A, lda, NULL, B, ldb, NULL, beta, C, ldc);
    }
}

EK_TARGET void ek_sgemm_nn_rows(int M, int N, int K, const float *A, int lda, const float *B, const int *boff, float beta,
                                float *C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    nn_core(M, N, K, A, lda, NULL, B, 0, boff, beta, C, ldc);
}

EK_TARGET void ek_sgemm_nn_arows(int M, int N, int K, const float *A, const int *aoff, const float *B, int ldb,
                                 float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    nn_core(M, N, K, A, 0, aoff, B, ldb, NULL, beta, C, ldc);
}

/* One 16 x 16 block in registers: v[i] = row i in, v[c] = column c out. Three rounds of interleaves: 32-bit
 * (unpack ps), 64-bit (unpack pd), then 128-bit lanes (two shuffle_f32x4 rounds). */
EK_TARGET EK_INLINE void ek_transpose16(__m512 *v) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* u[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i+3. */
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* Column 4L + j = lane L of u[j], u[4 + j], u[8 + j], u[12 + j]. */
    for (int j = 0; j < 4; j++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        v[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        v[4 + j] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        v[8 + j] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        v[12 + j] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* Lanes j of a 16-float load at index i0 with lo <= i0 + j < hi. */
EK_INLINE __mmask16 ek_range_lanes(long i0, long lo, long hi) {
    const long a = lo - i0 > 0 ? lo - i0 : 0, b = hi - i0 < 16 ? hi - i0 : 16;
    if (b <= a)
        return 0;
    return (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

/* dst[u] = base[2u] where lo <= 2u < hi, else 0, for u < count: two masked loads (no access outside lo ..< hi) and
 * one lane permute per 16 outputs. */
EK_TARGET static void ek_even_lanes(const float *base, long lo, long hi, float *dst, int count) {
    const __m512i idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int u0 = 0; u0 < count; u0 += 16) {
        const long i0 = 2L * u0;
        const __m512 a = _mm512_maskz_loadu_ps(ek_range_lanes(i0, lo, hi), base + i0);
        const __m512 b = _mm512_maskz_loadu_ps(ek_range_lanes(i0 + 16, lo, hi), base + i0 + 16);
        _mm512_mask_storeu_ps(dst + u0, ek_lanes(count - u0), _mm512_permutex2var_ps(a, idx, b));
    }
}

/* The scalar stride-2 gather took ~2 ns per element (a third of the first stride-2 conv's implicit forward). */
EK_TARGET void ek_phase_row(const float *row, int w, float *even, float *odd, int wp) {
    ek_even_lanes(row, 0, w, even, wp);
    ek_even_lanes(row - 1, 1, (long)w + 1, odd, wp); /* odd[u] = row[2u - 1] */
}

/* dst[c][r] = src[r][c] for a rows x cols block (leading dimensions lds, ldd), in 16 x 16 register blocks (masked at
 * the edges). One 16-lane gather down each source column took about twice as long (1.35 % of a 64² step). */
EK_TARGET void ek_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd) {
    for (int r0 = 0; r0 < rows; r0 += 16) {
        const int rr = rows - r0 < 16 ? rows - r0 : 16;
        const __mmask16 mo = ek_lanes(rr);
        for (int c0 = 0; c0 < cols; c0 += 16) {
            const int cc = cols - c0 < 16 ? cols - c0 : 16;
            const __mmask16 mi = ek_lanes(cc);
            __m512 v[16];
            for (int i = 0; i < 16; i++)
                v[i] = i < rr ? _mm512_maskz_loadu_ps(mi, src + (size_t)(r0 + i) * lds + c0) : _mm512_setzero_ps();
            ek_transpose16(v);
            for (int c = 0; c < cc; c++)
                _mm512_mask_storeu_ps(dst + (size_t)(c0 + c) * ldd + r0, mo, v[c]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* NT: C += A * B^T, dot products along K. Tile = 4 A rows x 4 B rows with     */
/* 16 vector accumulators over a K block, reduced horizontally at the end by   */
/* one 16-way transpose-add (whose output chunks are exactly the 4 C rows).    */
/* ------------------------------------------------------------------------ */

#define NT_MR 4
#define NT_NR 4
#ifndef NT_KC_MAX
#define NT_KC_MAX 256 /* packed block NT_MA x 256 floats = 32 KB of stack, L1-resident */
#endif
#ifndef NT_L2_BUDGET
#define NT_L2_BUDGET (1100u * 1000u) /* bytes of streamed operand per K block kept in the 1.25 MB L2 */
#endif
#ifndef NT_MA
#define NT_MA 32 /* rows of the packed L1 block, a multiple of 4 (32 x 256 beat 16 x 512 by ~5-10%) */
#endif

/* Horizontal sums of 16 vectors. Every vector's lanes are combined by the same
 * fixed tree (l+8, then +4, +2, +1), so bits do not depend on the slot.
 * Output lane 4*(n%4) + n/4 holds the sum of v[n]. */
EK_TARGET EK_INLINE __m512 ek_reduce16(const __m512 *v) {
    __m512 s1[8], s2[4], s3[2];
    for (int i = 0; i < 8; i++) {
        __m512 lo = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44);
        __m512 hi = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE);
        s1[i] = _mm512_add_ps(lo, hi);
    }
    for (int i = 0; i < 4; i++) {
        __m512 lo = _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0x88);
        __m512 hi = _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0xDD);
        s2[i] = _mm512_add_ps(lo, hi);
    }
    for (int i = 0; i < 2; i++) {
        __m512 lo = _mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 hi = _mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
        s3[i] = _mm512_add_ps(lo, hi);
    }
    __m512 lo = _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0));
    __m512 hi = _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1));
    return _mm512_add_ps(lo, hi);
}

/* One RA x RB tile (both <= 4) over kc: 16 vector accumulators, one 16-way reduction.
 * Accumulator n = 4*j + i lands in lane 4*i + j, i.e. 128-bit chunk i holds row i of C. */
EK_TARGET EK_INLINE void nt_tile(const int RA, const int RB, int kc, const float *A, int lda, const float *B,
                                 int ldb, float *C, int ldc, int overwrite, const float *pf) {
    __m512 acc[16];
    for (int n = 0; n < 16; n++)
        acc[n] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= kc; k += 16) {
        /* One row of the next streamed tile, one line per step: pulls it from L2 at a
         * rate the L2 sustains instead of in a burst when that tile starts. */
        _mm_prefetch((const char *)(pf + k), _MM_HINT_T0);
        __m512 av[NT_MR];
        for (int i = 0; i < RA; i++)
            av[i] = _mm512_loadu_ps(A + (size_t)i * lda + k);
        for (int j = 0; j < RB; j++) {
            const __m512 bv = _mm512_loadu_ps(B + (size_t)j * ldb + k);
            for (int i = 0; i < RA; i++)
                acc[4 * j + i] = _mm512_fmadd_ps(av[i], bv, acc[4 * j + i]);
        }
    }
    if (k < kc) {
        /* K tail: masked-off lanes load as 0 and add exactly 0. */
        const __mmask16 m = (__mmask16)((1u << (kc - k)) - 1u);
        __m512 av[NT_MR];
        for (int i = 0; i < RA; i++)
            av[i] = _mm512_maskz_loadu_ps(m, A + (size_t)i * lda + k);
        for (int j = 0; j < RB; j++) {
            const __m512 bv = _mm512_maskz_loadu_ps(m, B + (size_t)j * ldb + k);
            for (int i = 0; i < RA; i++)
                acc[4 * j + i] = _mm512_fmadd_ps(av[i], bv, acc[4 * j + i]);
        }
    }
    const __m512 sum = ek_reduce16(acc);
    const __mmask8 mc = (__mmask8)((1u << RB) - 1u);
    for (int i = 0; i < RA; i++) {
        __m128 r;
        switch (i) { /* the chunk index of extractf32x4 must be a constant */
        case 0: r = _mm512_extractf32x4_ps(sum, 0); break;
        case 1: r = _mm512_extractf32x4_ps(sum, 1); break;
        case 2: r = _mm512_extractf32x4_ps(sum, 2); break;
        default: r = _mm512_extractf32x4_ps(sum, 3); break;
        }
        float *c = C + (size_t)i * ldc;
        if (!overwrite)
            r = _mm_add_ps(_mm_maskz_loadu_ps(mc, c), r);
        _mm_mask_storeu_ps(c, mc, r);
    }
}

#define EK_NT_ROW(RA)                                                                                         \
    switch (RB) {                                                                                             \
    case 4: nt_tile(RA, 4, kc, A, lda, B, ldb, C, ldc, ow, pf); break;                                            \
    case 3: nt_tile(RA, 3, kc, A, lda, B, ldb, C, ldc, ow, pf); break;                                            \
    case 2: nt_tile(RA, 2, kc, A, lda, B, ldb, C, ldc, ow, pf); break;                                            \
    default: nt_tile(RA, 1, kc, A, lda, B, ldb, C, ldc, ow, pf); break;                                           \
    }

EK_TARGET static void nt_dispatch(int RA, int RB, int kc, const float *A, int lda, const float *B, int ldb,
                                  float *C, int ldc, int ow, const float *pf) {
    switch (RA) {
    case 4: EK_NT_ROW(4) break;
    case 3: EK_NT_ROW(3) break;
    case 2: EK_NT_ROW(2) break;
    default: EK_NT_ROW(1) break;
    }
}

/* Copies rows x kc floats (row stride ld) to dst with a 64-byte-aligned row stride kcp. */
EK_TARGET static void nt_pack(int rows, int kc, int kcp, const float *src, int ld, float *dst) {
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        float *d = dst + (size_t)r * kcp;
        int k = 0;
        for (; k + 16 <= kc; k += 16)
            _mm512_store_ps(d + k, _mm512_loadu_ps(s + k));
        if (k < kc) {
            const __mmask16 m = (__mmask16)((1u << (kc - k)) - 1u);
            _mm512_store_ps(d + k, _mm512_maskz_loadu_ps(m, s + k));
        }
    }
}

EK_TARGET void ek_sgemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    /* Operand rows are copied to 64-byte-aligned stack panels (36 KB in all): with an
     * odd leading dimension every 64-byte load would otherwise split two cache lines,
     * which measured ~40% slower. The packed block is reused by all the streamed tiles. */
    float ap[NT_MA * NT_KC_MAX] __attribute__((aligned(64)));
    float tp[NT_NR * NT_KC_MAX] __attribute__((aligned(64))); /* one streamed 4-row tile */
    const int kcb = ek_block(K, NT_KC_MAX, 16);
    for (int k0 = 0; k0 < K; k0 += kcb) {
        const int kc = K - k0 < kcb ? K - k0 : kcb;
        const int kcp = (kc + 15) & ~15;
        const int ow = (k0 == 0) && (beta == 0.0f);
        /* The packed block (NT_MA rows x kc) stays in L1 while the other operand streams
         * past it in 4-row tiles from L2. Pack the side whose partner fits in L2, so
         * neither operand is re-read from memory once per block. */
        const size_t bbytes = (size_t)N * kc * sizeof(float), abytes = (size_t)M * kc * sizeof(float);
        const int pack_a = bbytes <= NT_L2_BUDGET || bbytes <= abytes;
        if (pack_a) {
            for (int ib = 0; ib < M; ib += NT_MA) {
                const int ma = M - ib < NT_MA ? M - ib : NT_MA;
                nt_pack(ma, kc, kcp, A + (size_t)ib * lda + k0, lda, ap);
                for (int j0 = 0; j0 < N; j0 += NT_NR) {
                    const int RB = N - j0 < NT_NR ? N - j0 : NT_NR;
                    const float *bt = B + (size_t)j0 * ldb + k0;
                    int ldbt = ldb;
                    if ((ldb & 15) != 0 || ((uintptr_t)bt & 63u) != 0) { /* only misaligned rows need a copy */
                        nt_pack(RB, kc, kcp, bt, ldb, tp);
                        bt = tp;
                        ldbt = kcp;
                    }
                    for (int i0 = 0; i0 < ma; i0 += NT_MR) {
                        const int RA = ma - i0 < NT_MR ? ma - i0 : NT_MR;
                        const int nrow = j0 + NT_NR + (i0 / NT_MR) % NT_NR;
                        const float *pf = nrow < N ? B + (size_t)nrow * ldb + k0 : bt;
                        nt_dispatch(RA, RB, kc, ap + (size_t)i0 * kcp, kcp, bt, ldbt,
                                    C + (size_t)(ib + i0) * ldc + j0, ldc, ow, pf);
                    }
                }
            }
        } else {
            for (int jb = 0; jb < N; jb += NT_MA) {
                const int na = N - jb < NT_MA ? N - jb : NT_MA;
                nt_pack(na, kc, kcp, B + (size_t)jb * ldb + k0, ldb, ap);
                for (int i0 = 0; i0 < M; i0 += NT_MR) {
                    const int RA = M - i0 < NT_MR ? M - i0 : NT_MR;
                    const float *at = A + (size_t)i0 * lda + k0;
                    int ldat = lda;
                    if ((lda & 15) != 0 || ((uintptr_t)at & 63u) != 0) { /* reused by NT_MA/4 B tiles */
                        nt_pack(RA, kc, kcp, at, lda, tp);
                        at = tp;
                        ldat = kcp;
                    }
                    for (int j0 = 0; j0 < na; j0 += NT_NR) {
                        const int RB = na - j0 < NT_NR ? na - j0 : NT_NR;
                        const int nrow = i0 + NT_MR + (j0 / NT_NR) % NT_MR;
                        const float *pf = nrow < M ? A + (size_t)nrow * lda + k0 : at;
                        nt_dispatch(RA, RB, kc, at, ldat, ap + (size_t)j0 * kcp, kcp,
                                    C + (size_t)i0 * ldc + jb + j0, ldc, ow, pf);
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* im2col for a 3x3 kernel, padding 1, stride 1 or 2 (the contract of the    */
/* Swift im2col3x3). Each output row segment is one shifted (or, stride 2,   */
/* de-interleaved) input row: masked 16-lane loads give the zero padding, so */
/* there is no per-row memmove call and no scalar edge loop.                 */
/* ------------------------------------------------------------------------ */

/* Bits lo..hi-1 of a 32-bit mask (empty when hi <= lo); lo, hi in 0..32. */
EK_INLINE uint32_t ek_bits(int lo, int hi) {
    if (hi <= lo)
        return 0u;
    const uint32_t up = hi >= 32 ? 0xFFFFFFFFu : ((1u << hi) - 1u);
    const uint32_t down = lo <= 0 ? 0u : ((1u << lo) - 1u);
    return up & ~down;
}

EK_TARGET void ek_im2col3x3(const float *x, int channels, int h, int w, int stride, float *col, int ld, int row_start,
                            int row_count) {
    const int wo = (w - 1) / stride + 1;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512 zero = _mm512_setzero_ps();
    for (int c = 0; c < channels; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int kh = 0; kh < 3; kh++) {
            for (int kw = 0; kw < 3; kw++) {
                float *row = col + (size_t)((c * 3 + kh) * 3 + kw) * ld;
                const int dx = kw - 1;
                for (int oh = row_start; oh < row_start + row_count; oh++) {
                    const int ih = oh * stride + kh - 1;
                    float *dst = row + (size_t)(oh - row_start) * wo;
                    if (ih < 0 || ih >= h) {
                        for (int o = 0; o < wo; o += 16)
                            _mm512_mask_storeu_ps(dst + o, (__mmask16)ek_bits(0, wo - o), zero);
                        continue;
                    }
                    const float *src = xc + (size_t)ih * w;
                    for (int o = 0; o < wo; o += 16) {
                        const __mmask16 sm = (__mmask16)ek_bits(0, wo - o);
                        if (stride == 1) {
                            /* lane l reads src[o + l + dx] when 0 <= o + l + dx < w */
                            const int base = o + dx;
                            const __mmask16 lm = (__mmask16)ek_bits(-base, w - base);
                            _mm512_mask_storeu_ps(dst + o, sm, _mm512_maskz_loadu_ps(lm, src + base));
                        } else {
                            /* lane l reads src[2(o + l) + dx]: two loads cover 32 inputs, keep the even ones */
                            const int base = 2 * o + dx;
                            const uint32_t m = ek_bits(-base, w - base);
                            const __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)(m & 0xFFFFu), src + base);
                            const __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), src + base + 16);
                            _mm512_mask_storeu_ps(dst + o, sm, _mm512_permutex2var_ps(v0, even, v1));
                        }
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* AdamW over flat buffers, 16 lanes at a time. The same operations in the   */
/* same order as the scalar update (IEEE mul/add/sub/div/sqrt, no FMA), so   */
/* the result is bit-identical to it; the compiler left that loop scalar.    */
/* ------------------------------------------------------------------------ */
EK_TARGET void ek_adamw(long n, float *p, const float *g, float *m, float *v, float b1, float a1, float b2, float a2,
                        float decay, float step, float inv_bc2_sqrt, float eps) {
    const __m512 vb1 = _mm512_set1_ps(b1), va1 = _mm512_set1_ps(a1), vb2 = _mm512_set1_ps(b2),
                 va2 = _mm512_set1_ps(a2), vdecay = _mm512_set1_ps(decay), vstep = _mm512_set1_ps(step),
                 vinv = _mm512_set1_ps(inv_bc2_sqrt), veps = _mm512_set1_ps(eps);
    for (long i = 0; i < n; i += 16) {
        const __mmask16 k = ek_lanes(n - i);
        const __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(va1, gi));
        const __m512 vi = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_maskz_loadu_ps(k, v + i)),
                                        _mm512_mul_ps(_mm512_mul_ps(va2, gi), gi));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), vinv), veps);
        const __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
        const __m512 upd = _mm512_sub_ps(_mm512_mul_ps(pi, vdecay), _mm512_div_ps(_mm512_mul_ps(vstep, mi), denom));
        _mm512_mask_storeu_ps(p + i, k, upd);
    }
}

/* ------------------------------------------------------------------------ */
/* InstanceNorm + LeakyReLU planes (see ek_gemm.h). Explicit mul and add     */
/* intrinsics (no FMA) and the portable loops' lane order: bit-identical to  */
/* the Swift loops, which compile to 4-wide SSE here.                        */
/* ------------------------------------------------------------------------ */
EK_TARGET void ek_inorm_apply(long n, const float *y, float *a, float g, float b, float slope) {
    const __m512 vg = _mm512_set1_ps(g), vb = _mm512_set1_ps(b), vs = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        const __mmask16 k = ek_lanes(n - i);
        const __m512 z = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), vg), vb);
        const __mmask16 neg = _mm512_cmp_ps_mask(z, zero, _CMP_NGT_UQ); /* !(z > 0), as the ternary */
        _mm512_mask_storeu_ps(a + i, k, _mm512_mask_mul_ps(z, neg, z, vs));
    }
}

EK_TARGET void ek_inorm_bwd_sums(long n, const float *y, const float *d, float mean, float rstd, float gam, float bet,
                                 float slope, double *sum_dz, double *sum_dzx) {
    const __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd), vg = _mm512_set1_ps(gam),
                 vb = _mm512_set1_ps(bet), vs = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
    __m512 sdz = _mm512_setzero_ps(), sdzx = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(y + i), vm), vr);
        const __m512 z = _mm512_add_ps(_mm512_mul_ps(xh, vg), vb);
        const __m512 dv = _mm512_loadu_ps(d + i);
        const __mmask16 neg = _mm512_cmp_ps_mask(z, zero, _CMP_NGT_UQ);
        const __m512 dz = _mm512_mask_mul_ps(dv, neg, dv, vs);
        sdz = _mm512_add_ps(sdz, dz);
        sdzx = _mm512_add_ps(sdzx, _mm512_mul_ps(dz, xh));
    }
    float l1[16], l2[16];
    _mm512_storeu_ps(l1, sdz);
    _mm512_storeu_ps(l2, sdzx);
    double s1 = 0, s2 = 0;
    for (int l = 0; l < 16; l++) { s1 += (double)l1[l]; s2 += (double)l2[l]; }
    for (; i < n; i++) {
        const float xh = (y[i] - mean) * rstd;
        const float z = xh * gam + bet;
        const float dz = z > 0 ? d[i] : d[i] * slope;
        s1 += (double)dz;
        s2 += (double)(dz * xh);
    }
    *sum_dz = s1;
    *sum_dzx = s2;
}

EK_TARGET void ek_inorm_bwd_apply(long n, float *y, const float *d, float mean, float rstd, float gam, float bet,
                                  float slope, float k, float mdz, float mdzx) {
    const __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd), vg = _mm512_set1_ps(gam), vb = _mm512_set1_ps(bet),
                 vs = _mm512_set1_ps(slope), vk = _mm512_set1_ps(k), vmdz = _mm512_set1_ps(mdz),
                 vmdzx = _mm512_set1_ps(mdzx), zero = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        const __mmask16 m = ek_lanes(n - i);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + i), vm), vr);
        const __m512 z = _mm512_add_ps(_mm512_mul_ps(xh, vg), vb);
        const __m512 dv = _mm512_maskz_loadu_ps(m, d + i);
        const __mmask16 neg = _mm512_cmp_ps_mask(z, zero, _CMP_NGT_UQ);
        const __m512 dz = _mm512_mask_mul_ps(dv, neg, dv, vs);
        const __m512 out = _mm512_mul_ps(vk, _mm512_sub_ps(_mm512_sub_ps(dz, vmdz), _mm512_mul_ps(xh, vmdzx)));
        _mm512_mask_storeu_ps(y + i, m, out);
    }
}

/* The adjoint of ek_im2col3x3: dx[c, ih, iw] += dcol[row, oh, ow] for every element im2col read from it, in the
 * same (c, kh, kw, oh, ow) order as the portable loop, so the sums are bit-identical. Stride 2 spreads 16 column
 * values onto the even lanes of two 16-lane spans and adds under a mask (odd lanes untouched). */
EK_TARGET void ek_col2im3x3(const float *dcol, int ld, int channels, int h, int w, int stride, float *dx, int row_start,
                            int row_count) {
    const int wo = (w - 1) / stride + 1;
    const __m512i dup_lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i dup_hi = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    for (int c = 0; c < channels; c++) {
        float *xc = dx + (size_t)c * h * w;
        for (int kh = 0; kh < 3; kh++) {
            for (int kw = 0; kw < 3; kw++) {
                const float *row = dcol + (size_t)((c * 3 + kh) * 3 + kw) * ld;
                const int ddx = kw - 1;
                const int owLo = ddx < 0 ? 1 : 0;
                int owHi = w - 1 - ddx < 0 ? 0 : (w - 1 - ddx) / stride + 1;
                if (owHi > wo)
                    owHi = wo;
                if (owHi <= owLo)
                    continue;
                for (int oh = row_start; oh < row_start + row_count; oh++) {
                    const int ih = oh * stride + kh - 1;
                    if (ih < 0 || ih >= h)
                        continue;
                    const float *src = row + (size_t)(oh - row_start) * wo;
                    float *dst = xc + (size_t)ih * w;
                    if (stride == 1) {
                        float *d = dst + ddx;
                        for (int o = owLo; o < owHi; o += 16) {
                            const __mmask16 m = (__mmask16)ek_bits(0, owHi - o);
                            _mm512_mask_storeu_ps(d + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + o), _mm512_maskz_loadu_ps(m, src + o)));
                        }
                    } else {
                        for (int o = owLo; o < owHi; o += 16) {
                            const __m512 v = _mm512_maskz_loadu_ps((__mmask16)ek_bits(0, owHi - o), src + o);
                            float *d = dst + 2 * o + ddx;
                            /* even lane 2t of the first span is column o + t (valid while o + t < owHi) */
                            const uint32_t n = (uint32_t)(owHi - o);
                            const __mmask16 m0 = (__mmask16)(0x5555u & ek_bits(0, 2 * (int)n));
                            const __mmask16 m1 = (__mmask16)(0x5555u & ek_bits(0, 2 * ((int)n - 8)));
                            _mm512_mask_storeu_ps(d, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, d), _mm512_permutexvar_ps(dup_lo, v)));
                            if (m1)
                                _mm512_mask_storeu_ps(d + 16, m1,
                                                      _mm512_add_ps(_mm512_maskz_loadu_ps(m1, d + 16), _mm512_permutexvar_ps(dup_hi, v)));
                        }
                    }
                }
            }
        }
    }
}

#endif /* __x86_64__ */
