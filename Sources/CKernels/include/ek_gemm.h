/* ek_gemm.h — AVX-512 single-precision GEMM kernels for the skinny shapes of
 * an im2col + GEMM 3x3-conv U-Net (M = 32..128 rows with N or K very large; any M over N <= 256 columns).
 *
 * All matrices are row-major; lda/ldb/ldc are leading dimensions in floats.
 * beta must be 0 or 1 (any nonzero beta acts as 1). With beta == 0, C is only written (it may hold NaN
 * before the call). Any M, N, K >= 1. The kernels are single-threaded,
 * allocate nothing on the heap (NT: ~42 KB stack frame, NN: < 1 KB), and are
 * deterministic: the summation order depends only on (M, N, K), not on
 * the buffers' addresses or alignment.
 *
 * Call the ek_sgemm_* functions only when ek_avx512_available() returns 1.
 */
#ifndef EK_GEMM_H
#define EK_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the running CPU supports AVX-512F (and the VL/DQ subsets used). */
int ek_avx512_available(void);

/* C[M x N] = A[M x K] * B[K x N] + beta * C. */
void ek_sgemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc);

/* ek_sgemm_nn with B's row k at B + boff[k] (N floats each) instead of a leading dimension: the rows of an
 * implicit im2col are shifted views of one zero-padded input. Same summation order as ek_sgemm_nn. */
void ek_sgemm_nn_rows(int M, int N, int K, const float *A, int lda, const float *B, const int *boff, float beta,
                      float *C, int ldc);

/* C[M x N] = A[M x K] * B[N x K]^T + beta * C (both operands contiguous along K). */
void ek_sgemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc);

/* ek_sgemm_nn with A's row i at A + aoff[i] (K floats each): the transposed weight gradient dW^T = X~ * dy'^T over
 * implicit-im2col rows, broadcast from the padded input in place. */
void ek_sgemm_nn_arows(int M, int N, int K, const float *A, const int *aoff, const float *B, int ldb, float beta,
                       float *C, int ldc);

/* dst[c][r] = src[r][c] for a rows x cols matrix (leading dimensions lds, ldd). An exact copy. */
void ek_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd);
/* One input row of w floats -> its even and odd column phases, wp floats each: even[u] = row[2u], odd[u] = row[2u - 1],
 * 0 where the column is outside 0 ..< w (the stride-2 implicit im2col's phase planes). */
void ek_phase_row(const float *row, int w, float *even, float *odd, int wp);

/* One AdamW step over n floats (see Tensor/AdamW.swift for the update): m, v, p updated in place. Bit-identical to
 * the scalar loop (same IEEE operations in the same order, no fused multiply-add). */
void ek_adamw(long n, float *p, const float *g, float *m, float *v, float b1, float a1, float b2, float a2, float decay,
              float step, float inv_bc2_sqrt, float eps);

/* wf[ci][co*9 + 8 - t] = w[co][ci][t]: the flipped, transposed kernel of a stride-1 conv's input gradient. Any CPU. */
void ek_flip3x3(int cout, int cin, const float *w, float *wf);

/* im2col for a 3x3 kernel, padding 1, stride 1 or 2, over `channels` planes of h x w: row (c*3 + kh)*3 + kw of col
 * (row stride ld) holds x[c, oh*stride + kh - 1, ow*stride + kw - 1] (0 outside the plane) for the output rows
 * row_start ..< row_start + row_count, at column (oh - row_start)*wo + ow. An exact copy (no arithmetic). */
void ek_im2col3x3(const float *x, int channels, int h, int w, int stride, float *col, int ld, int row_start,
                  int row_count);

/* The adjoint of ek_im2col3x3 (same arguments, dx accumulated): bit-identical to the portable col2im. */
void ek_col2im3x3(const float *dcol, int ld, int channels, int h, int w, int stride, float *dx, int row_start,
                  int row_count);

/* InstanceNorm + LeakyReLU, one (sample, channel) plane of n floats (AVX-512; the Swift loops are the portable form
 * and give the same bits). Forward: a = lrelu(y*g + b) (multiply, then add). Backward pass 1: with
 * xh = (y - mean)*rstd, z = xh*gam + bet, dz = z > 0 ? d : d*slope, the sums of dz and dz*xh over 16 float lanes
 * (element i in lane i % 16), the lanes then added in order in double, the n % 16 tail in double. Pass 2:
 * y = k*((dz - mdz) - xh*mdzx) in place. */
void ek_inorm_apply(long n, const float *y, float *a, float g, float b, float slope);
void ek_inorm_bwd_sums(long n, const float *y, const float *d, float mean, float rstd, float gam, float bet, float slope,
                       double *sum_dz, double *sum_dzx);
void ek_inorm_bwd_apply(long n, float *y, const float *d, float mean, float rstd, float gam, float bet, float slope,
                        float k, float mdz, float mdzx);

/* Winograd F(2x2, 3x3) for a 3x3 conv, stride 1, padding 1, over even h x w planes (ek_winograd.c; any CPU).
 * With T = nb*(h/2)*(w/2) tiles numbered (n*(h/2) + ty)*(w/2) + tx, and 16 matrices per operand, matrix t at
 * base + t*stride (a stride a little over the matrix size keeps the 16 streams out of each other's cache sets):
 *   ek_wino_filter:  w [co][ci][3][3] -> U_t [co][ci]           (G g G^T, entry t of each 4x4)
 *   ek_wino_input:   x [nb][c][h][w] (sample stride in floats) -> V_t [c][T]   (B^T d B of each 4x4 input tile)
 *   ek_wino_output:  M_t [co][T] -> y [nb][co][h][w]             (A^T m A, + bias[o] when bias is not NULL)
 * so that y = conv(x, w) when M_t = U_t * V_t for the 16 t. The *_adjoint functions are their exact transposes
 * (the backward pass): filter dU -> dw (written); input dV -> dx (written, or added when accumulate); output
 * dy -> dM (written). */
void ek_wino_filter(int co, int ci, const float *w, float *u, long su);
/* The transforms run AVX-512 code on planes up to 30 wide when the CPU has it (the portable loops' results, the same
 * operations in the same order); 0 forces the portable loops, 1 the vector code (tests compare them). */
void ek_wino_use_vector(int on);
void ek_wino_filter_adjoint(int co, int ci, const float *du, long su, float *dw);
void ek_wino_input(int nb, int c, int h, int w, const float *x, long sample_stride, float *v, long T, long sv);
void ek_wino_input_adjoint(int nb, int c, int h, int w, const float *dv, long T, long sv, float *dx,
                           long sample_stride, int accumulate);
void ek_wino_output(int nb, int co, int h, int w, const float *m, long T, long sm, const float *bias, float *y,
                    long sample_stride);
void ek_wino_output_adjoint(int nb, int co, int h, int w, const float *dy, long sample_stride, float *dm, long T,
                            long sm);

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_H */
