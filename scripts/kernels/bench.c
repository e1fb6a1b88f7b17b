#define _POSIX_C_SOURCE 200809L
/* bench.c — correctness and speed harness for ek_gemm (vs OpenBLAS cblas_sgemm, 1 thread).
 *
 *   ./bench            correctness sweep, then the speed table
 *   ./bench check      correctness only
 *   ./bench speed      speed only
 */
#include "ek_gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

/* xorshift64*: every random choice comes from this one seeded stream. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }
static float rng_unit(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static void *xmalloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "bench: out of memory allocating %zu bytes\n", bytes);
        exit(2);
    }
    return p;
}

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = rng_unit();
}

/* One correctness case. nt selects A*B^T. Checks: every element within a
 * rigorous fp32 rounding bound of a double reference, padding of C untouched,
 * and a second identical call gives identical bits. */
static int check_case(int nt, int M, int N, int K, int lda, int ldb, int ldc, float beta) {
    const size_t brows = nt ? (size_t)N : (size_t)K;
    float *A = xmalloc(sizeof(float) * (size_t)M * lda);
    float *B = xmalloc(sizeof(float) * brows * ldb);
    float *C0 = xmalloc(sizeof(float) * (size_t)M * ldc);
    float *C = xmalloc(sizeof(float) * (size_t)M * ldc);
    float *C2 = xmalloc(sizeof(float) * (size_t)M * ldc);
    fill(A, (size_t)M * lda);
    fill(B, brows * ldb);
    fill(C0, (size_t)M * ldc);
    for (size_t i = 0; i < (size_t)M * ldc; i++) {
        const int col = (int)(i % (size_t)ldc);
        /* beta 0: the live region holds NaN, which must never leak into the result. */
        C[i] = (beta == 0.0f && col < N) ? NAN : C0[i];
    }
    memcpy(C2, C, sizeof(float) * (size_t)M * ldc);
    if (nt) {
        ek_sgemm_nt(M, N, K, A, lda, B, ldb, beta, C, ldc);
        ek_sgemm_nt(M, N, K, A, lda, B, ldb, beta, C2, ldc);
    } else {
        ek_sgemm_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
        ek_sgemm_nn(M, N, K, A, lda, B, ldb, beta, C2, ldc);
    }
    int ok = 1;
    double worst = 0;
    for (int i = 0; i < M && ok; i++) {
        for (int j = 0; j < ldc; j++) {
            const float got = C[(size_t)i * ldc + j];
            if (j >= N) {
                if (memcmp(&got, &C0[(size_t)i * ldc + j], sizeof got) != 0) {
                    fprintf(stderr, "  padding of C overwritten at (%d,%d)\n", i, j);
                    ok = 0;
                    break;
                }
                continue;
            }
            double ref = beta != 0.0f ? (double)C0[(size_t)i * ldc + j] : 0.0;
            double mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                const double a = A[(size_t)i * lda + k];
                const double b = nt ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                ref += a * b;
                mag += fabs(a * b);
            }
            /* Worst-case bound for any summation order of K+1 fp32 terms. */
            const double tol = (K + 2) * 1.2e-7 * mag + 1e-30;
            const double err = fabs((double)got - ref);
            if (!(err <= tol)) {
                fprintf(stderr, "  C(%d,%d) = %.9g, reference %.9g (err %.3g > tol %.3g)\n", i, j, got, ref, err,
                        tol);
                ok = 0;
                break;
            }
            if (err / (mag + 1e-30) > worst)
                worst = err / (mag + 1e-30);
        }
    }
    if (ok && memcmp(C, C2, sizeof(float) * (size_t)M * ldc) != 0) {
        fprintf(stderr, "  two identical calls gave different bits\n");
        ok = 0;
    }
    if (ok) {
        /* Same values at addresses shifted by 1..3 floats (not 64-byte aligned) must give the same bits. */
        const int sh = 1 + (M + N + K) % 3;
        float *A3 = xmalloc(sizeof(float) * ((size_t)M * lda + 3));
        float *B3 = xmalloc(sizeof(float) * (brows * ldb + 3));
        float *C3 = xmalloc(sizeof(float) * ((size_t)M * ldc + 3));
        memcpy(A3 + sh, A, sizeof(float) * (size_t)M * lda);
        memcpy(B3 + sh, B, sizeof(float) * brows * ldb);
        for (size_t i = 0; i < (size_t)M * ldc; i++)
            C3[sh + i] = (beta == 0.0f && (int)(i % (size_t)ldc) < N) ? NAN : C0[i];
        if (nt)
            ek_sgemm_nt(M, N, K, A3 + sh, lda, B3 + sh, ldb, beta, C3 + sh, ldc);
        else
            ek_sgemm_nn(M, N, K, A3 + sh, lda, B3 + sh, ldb, beta, C3 + sh, ldc);
        if (memcmp(C, C3 + sh, sizeof(float) * (size_t)M * ldc) != 0) {
            fprintf(stderr, "  result bits depend on buffer alignment (shift %d)\n", sh);
            ok = 0;
        }
        free(A3);
        free(B3);
        free(C3);
    }
    if (!ok)
        fprintf(stderr, "FAIL %s M=%d N=%d K=%d lda=%d ldb=%d ldc=%d beta=%g\n", nt ? "NT" : "NN", M, N, K, lda,
                ldb, ldc, beta);
    free(A);
    free(B);
    free(C0);
    free(C);
    free(C2);
    return ok;
}

static int run_checks(void) {
    int pass = 0, fail = 0;
    for (int nt = 0; nt <= 1; nt++) {
        /* Exhaustive small edges: all M 1..9 x N 1..9 at a few K. */
        const int ks[] = {1, 2, 7, 15, 16, 17, 33};
        for (int M = 1; M <= 9; M++)
            for (int N = 1; N <= 9; N++)
                for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
                    const int K = ks[t];
                    const float beta = (float)((M + N + (int)t) & 1);
                    if (check_case(nt, M, N, K, K + (M & 1), nt ? K + (N & 1) : N + (K & 1), N + (M % 3), beta))
                        pass++;
                    else
                        fail++;
                }
        /* Random shapes: M 1..70, N 1..70, K 1..600, padded leading dimensions, both betas. */
        for (int t = 0; t < 300; t++) {
            const int M = rng_int(1, 70), N = rng_int(1, 70), K = rng_int(1, 600);
            const int lda = K + rng_int(0, 3) * rng_int(0, 1);
            const int ldb = (nt ? K : N) + rng_int(0, 5) * rng_int(0, 1);
            const int ldc = N + rng_int(0, 4) * rng_int(0, 1);
            const float beta = (float)(t & 1);
            if (check_case(nt, M, N, K, lda, ldb, ldc, beta))
                pass++;
            else
                fail++;
        }
        /* The 64-column strips (N 64 and 128) and the 12/8/6-row tiles of every strip width: M 1..25 covers
         * full tiles and each row remainder. */
        const int ns[] = {16, 32, 48, 63, 64, 65, 96, 127, 128, 129, 176, 192, 256, 257};
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
            for (int M = 1; M <= 25; M += 1 + (M > 13)) {
                const int N = ns[t], K = 1 + (M * 37 + N) % 300;
                if (check_case(nt, M, N, K, K + (M & 1), (nt ? K : N) + (M % 3 == 0 ? 16 : 0), N + (M & 2), (float)(M & 1)))
                    pass++;
                else
                    fail++;
            }
        /* Large N (NN) / large K (NT), and the row counts of the real layers. */
        const int big[][3] = {{32, 1000, 288}, {64, 777, 300}, {70, 385, 129}, {128, 450, 1152}, {33, 2049, 65},
                              {65, 97, 1300}, {129, 50, 257}, {32, 288, 2100}, {64, 70, 4100}};
        for (size_t t = 0; t < sizeof big / sizeof big[0]; t++) {
            const int M = big[t][0];
            const int N = nt ? (big[t][1] > 300 ? 300 : big[t][1]) : big[t][1];
            const int K = big[t][2];
            for (int b = 0; b <= 1; b++) {
                if (check_case(nt, M, N, K, K + 1, (nt ? K : N) + 3, N + 5, (float)b))
                    pass++;
                else
                    fail++;
            }
        }
    }
    /* Wide NT shapes; the last three have N x kc x 4 bytes well above the 1.1 MB L2 budget
     * for any K block >= 100, exercising the path that packs B and streams A. */
    const int ntbig[][3] = {{33, 700, 600}, {64, 1030, 513}, {5, 1200, 300}, {70, 2000, 97},
                            {37, 3000, 300}, {6, 2600, 257}, {70, 2900, 512}};
    for (size_t t = 0; t < sizeof ntbig / sizeof ntbig[0]; t++)
        for (int b = 0; b <= 1; b++) {
            const int M = ntbig[t][0], N = ntbig[t][1], K = ntbig[t][2];
            if (check_case(1, M, N, K, K + 3, K + 1, N + 2, (float)b))
                pass++;
            else
                fail++;
        }
    printf("correctness: %d PASS, %d FAIL\n", pass, fail);
    return fail == 0;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int nt, M, N, K;
    float beta;
} Shape;

static void call(int impl, const Shape *s, const float *A, const float *B, float *C) {
    const int lda = s->K, ldb = s->nt ? s->K : s->N, ldc = s->N;
    if (impl == 0) {
        if (s->nt)
            ek_sgemm_nt(s->M, s->N, s->K, A, lda, B, ldb, s->beta, C, ldc);
        else
            ek_sgemm_nn(s->M, s->N, s->K, A, lda, B, ldb, s->beta, C, ldc);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, s->nt ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, A, lda,
                    B, ldb, s->beta, C, ldc);
    }
}

static void run_speed(void) {
    const Shape shapes[] = {
        {0, 32, 16384, 288, 0}, {0, 32, 16384, 576, 0}, {0, 32, 8192, 288, 0}, {0, 32, 1024, 288, 0},
        {0, 64, 4096, 576, 0},  {0, 64, 4096, 1152, 0}, {0, 64, 4096, 288, 0}, {0, 64, 2048, 576, 0},
        {0, 128, 2048, 1152, 0}, {0, 32, 4096, 576, 0}, {0, 32, 896, 288, 0},  {0, 64, 448, 576, 0},
        {1, 32, 288, 16384, 0}, {1, 32, 576, 16384, 0}, {1, 64, 576, 4096, 0}, {1, 64, 1152, 4096, 0},
        {1, 128, 1152, 2048, 0}, {1, 32, 288, 896, 0},  {1, 64, 576, 448, 0},  {1, 32, 288, 910, 1},
        {1, 64, 576, 455, 1},
    };
    printf("\n%-4s %5s %6s %6s %4s | %9s %9s | %6s\n", "op", "M", "N", "K", "beta", "ek GF/s", "blas GF/s",
           "ratio");
    /* BENCH_ONLY=NN|NT restricts the table; BENCH_ROUNDS overrides best-of-7. */
    const char *only = getenv("BENCH_ONLY");
    const char *rounds_env = getenv("BENCH_ROUNDS");
    const int rounds = rounds_env && atoi(rounds_env) > 0 ? atoi(rounds_env) : 7;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const Shape *s = &shapes[t];
        if (only && strcmp(only, s->nt ? "NT" : "NN") != 0)
            continue;
        const size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
        /* BENCH_MISALIGN=1 shifts every buffer by one float off the 64-byte boundary (like malloc'd memory). */
        const int mis = getenv("BENCH_MISALIGN") && atoi(getenv("BENCH_MISALIGN")) ? 1 : 0;
        float *A0 = xmalloc(sizeof(float) * (na + 1)), *B0 = xmalloc(sizeof(float) * (nb + 1)),
              *C0 = xmalloc(sizeof(float) * (nc + 1));
        float *A = A0 + mis, *B = B0 + mis, *C = C0 + mis;
        fill(A, na);
        fill(B, nb);
        /* Small values keep beta=1 accumulation far from overflow over many repetitions. */
        for (size_t i = 0; i < nc; i++)
            C[i] = 0.0f;
        const double flops = 2.0 * s->M * s->N * s->K;
        /* Calls per sample so one sample takes ~15 ms. */
        int reps = (int)(15e-3 * 60e9 / flops);
        if (reps < 1)
            reps = 1;
        double best[2] = {1e30, 1e30};
        call(0, s, A, B, C);
        call(1, s, A, B, C);
        for (int rep = 0; rep < rounds; rep++) {
            for (int impl = 0; impl < 2; impl++) { /* alternate so both see the same machine noise */
                const double t0 = now_sec();
                for (int r = 0; r < reps; r++)
                    call(impl, s, A, B, C);
                const double dt = (now_sec() - t0) / reps;
                if (dt < best[impl])
                    best[impl] = dt;
            }
        }
        const double g0 = flops / best[0] * 1e-9, g1 = flops / best[1] * 1e-9;
        printf("%-4s %5d %6d %6d %4g | %9.1f %9.1f | %6.2f\n", s->nt ? "NT" : "NN", s->M, s->N, s->K, s->beta, g0,
               g1, g0 / g1);
        fflush(stdout);
        free(A0);
        free(B0);
        free(C0);
    }
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    if (!ek_avx512_available()) {
        fprintf(stderr, "bench: this CPU lacks AVX-512F; the ek kernels cannot run here\n");
        return 2;
    }
    const char *mode = argc > 1 ? argv[1] : "all";
    int ok = 1;
    if (strcmp(mode, "speed") != 0)
        ok = run_checks();
    if (strcmp(mode, "check") != 0)
        run_speed();
    return ok ? 0 : 1;
}
