/* ek_winograd.c — the transforms of a Winograd F(2x2, 3x3) convolution (3x3 kernel, stride 1, padding 1, even
 * planes) and their adjoints, for the U-Net's small-plane layers. Layouts (see ek_gemm.h):
 *   U [16][co][ci]   transformed filter   G g G^T                (matrix t at u + t*su)
 *   V [16][c][T]     transformed input    B^T d B  (d: the 4x4 input tile at rows 2ty-1.., cols 2tx-1..; v + t*sv)
 *   M [16][co][T]    the 16 products U_t * V_t, output tile A^T m A (2x2; m + t*sm)
 * with T tiles numbered (n*th + ty)*tw + tx over the samples of a call. Portable C (vectorised by the compiler:
 * every inner loop runs over a contiguous row of tiles); the transforms are a few percent of the 16 GEMMs.
 */
#include "ek_gemm.h"

#include <string.h>

/* -1: decide on first use (AVX-512 when the CPU has it); 0: portable loops; 1: AVX-512 (tests compare the two). */
static int wino_vector = -1;
void ek_wino_use_vector(int on) { wino_vector = on; }
static int vector_on(void) {
    if (wino_vector < 0) wino_vector = ek_avx512_available();
    return wino_vector;
}
/* The plane transforms hold a padded row in two vectors. */
static int use_vector(int w) { return vector_on() && w + 2 <= 32; }

static void ek_wino_filter_portable(int co, int ci, const float *w, float *u, long su) {
    for (int o = 0; o < co; o++) {
        float *uo = u + (size_t)o * ci;
        for (int c = 0; c < ci; c++) {
            const float *g = w + ((size_t)o * ci + c) * 9;
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                const float a = g[j], b = g[3 + j], d = g[6 + j];
                t[0][j] = a;
                t[1][j] = 0.5f * (a + b + d);
                t[2][j] = 0.5f * (a - b + d);
                t[3][j] = d;
            }
            for (int r = 0; r < 4; r++) {
                const float a = t[r][0], b = t[r][1], d = t[r][2];
                uo[(r * 4 + 0) * su + c] = a;
                uo[(r * 4 + 1) * su + c] = 0.5f * (a + b + d);
                uo[(r * 4 + 2) * su + c] = 0.5f * (a - b + d);
                uo[(r * 4 + 3) * su + c] = d;
            }
        }
    }
}

static void ek_wino_filter_adjoint_portable(int co, int ci, const float *du, long su, float *dw) {
    for (int o = 0; o < co; o++) {
        const float *uo = du + (size_t)o * ci;
        for (int c = 0; c < ci; c++) {
            float t[4][3];
            for (int r = 0; r < 4; r++) {
                const float u0 = uo[(r * 4 + 0) * su + c], u1 = uo[(r * 4 + 1) * su + c];
                const float u2 = uo[(r * 4 + 2) * su + c], u3 = uo[(r * 4 + 3) * su + c];
                t[r][0] = u0 + 0.5f * u1 + 0.5f * u2;
                t[r][1] = 0.5f * u1 - 0.5f * u2;
                t[r][2] = 0.5f * u1 + 0.5f * u2 + u3;
            }
            float *g = dw + ((size_t)o * ci + c) * 9;
            for (int j = 0; j < 3; j++) {
                g[j] = t[0][j] + 0.5f * t[1][j] + 0.5f * t[2][j];
                g[3 + j] = 0.5f * t[1][j] - 0.5f * t[2][j];
                g[6 + j] = 0.5f * t[1][j] + 0.5f * t[2][j] + t[3][j];
            }
        }
    }
}

/* One h x w plane into the interior of its zero-bordered copy ((h + 2) rows of w + 2; the border is never written). */
static inline void wino_pad_plane(float *pad, const float *p, int h, int w) {
    for (int y = 0; y < h; y++) memcpy(pad + (y + 1) * (w + 2) + 1, p + y * w, sizeof(float) * w);
}

/* The padded plane (h + 2) x (w + 2) of one input channel: row-combined four rows at a time, then split into the even
 * and odd columns so the column combination is contiguous. */
static void ek_wino_input_portable(int nb, int c, int h, int w, const float *x, long sample_stride, float *v, long T, long sv) {
    const int th = h / 2, tw = w / 2, wp = w + 2;
    float pad[(h + 2) * wp];
    float ev[4][tw + 1], od[4][tw + 1];
    memset(pad, 0, sizeof pad);
    for (int n = 0; n < nb; n++) {
        for (int ch = 0; ch < c; ch++) {
            wino_pad_plane(pad, x + n * sample_stride + (long)ch * h * w, h, w);
            float *vc = v + (long)ch * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                const float *r0 = pad + 2 * ty * wp, *r1 = r0 + wp, *r2 = r1 + wp, *r3 = r2 + wp;
                for (int j = 0; j <= tw; j++) {
                    const int e = 2 * j, o = 2 * j + 1;
                    ev[0][j] = r0[e] - r2[e];
                    ev[1][j] = r1[e] + r2[e];
                    ev[2][j] = r2[e] - r1[e];
                    ev[3][j] = r1[e] - r3[e];
                    od[0][j] = r0[o] - r2[o]; /* o <= w + 1: inside the padded row */
                    od[1][j] = r1[o] + r2[o];
                    od[2][j] = r2[o] - r1[o];
                    od[3][j] = r1[o] - r3[o];
                }
                for (int r = 0; r < 4; r++) {
                    float *d0 = vc + (r * 4 + 0) * sv + ty * tw, *d1 = d0 + sv, *d2 = d1 + sv, *d3 = d2 + sv;
                    for (int j = 0; j < tw; j++) {
                        d0[j] = ev[r][j] - ev[r][j + 1];
                        d1[j] = od[r][j] + ev[r][j + 1];
                        d2[j] = ev[r][j + 1] - od[r][j];
                        d3[j] = od[r][j] - od[r][j + 1];
                    }
                }
            }
        }
    }
}

static void ek_wino_input_adjoint_portable(int nb, int c, int h, int w, const float *dv, long T, long sv, float *dx,
                           long sample_stride, int accumulate) {
    const int th = h / 2, tw = w / 2, wp = w + 2;
    float pad[(h + 2) * wp];
    float ev[4][tw + 1], od[4][tw + 1];
    for (int n = 0; n < nb; n++) {
        for (int ch = 0; ch < c; ch++) {
            memset(pad, 0, sizeof pad);
            const float *vc = dv + (long)ch * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                /* Columns: the adjoint of the even/odd combination, per row r of the tile. */
                for (int r = 0; r < 4; r++) {
                    const float *s0 = vc + (r * 4 + 0) * sv + ty * tw, *s1 = s0 + sv, *s2 = s1 + sv, *s3 = s2 + sv;
                    for (int j = 0; j <= tw; j++) { ev[r][j] = 0; od[r][j] = 0; }
                    for (int j = 0; j < tw; j++) {
                        ev[r][j] += s0[j];
                        ev[r][j + 1] += -s0[j] + s1[j] + s2[j];
                        od[r][j] += s1[j] - s2[j] + s3[j];
                        od[r][j + 1] += -s3[j];
                    }
                }
                /* Rows: the adjoint of the row combination, added into the four padded rows. */
                float *r0 = pad + 2 * ty * wp, *r1 = r0 + wp, *r2 = r1 + wp, *r3 = r2 + wp;
                for (int j = 0; j <= tw; j++) {
                    const int e = 2 * j, o = 2 * j + 1;
                    r0[e] += ev[0][j];
                    r1[e] += ev[1][j] - ev[2][j] + ev[3][j];
                    r2[e] += -ev[0][j] + ev[1][j] + ev[2][j];
                    r3[e] += -ev[3][j];
                    r0[o] += od[0][j];
                    r1[o] += od[1][j] - od[2][j] + od[3][j];
                    r2[o] += -od[0][j] + od[1][j] + od[2][j];
                    r3[o] += -od[3][j];
                }
            }
            float *p = dx + n * sample_stride + (long)ch * h * w;
            for (int y = 0; y < h; y++) {
                const float *src = pad + (y + 1) * wp + 1;
                float *dst = p + y * w;
                if (accumulate) { for (int j = 0; j < w; j++) dst[j] += src[j]; }
                else memcpy(dst, src, sizeof(float) * w);
            }
        }
    }
}

static void ek_wino_output_portable(int nb, int co, int h, int w, const float *m, long T, long sm, const float *bias, float *y,
                    long sample_stride) {
    const int th = h / 2, tw = w / 2;
    float t[2][4][tw];
    for (int n = 0; n < nb; n++) {
        for (int o = 0; o < co; o++) {
            const float b = bias ? bias[o] : 0.0f;
            const float *mo = m + (long)o * T + (long)n * th * tw;
            float *p = y + n * sample_stride + (long)o * h * w;
            for (int ty = 0; ty < th; ty++) {
                for (int q = 0; q < 4; q++) {
                    const float *m0 = mo + (0 * 4 + q) * sm + ty * tw, *m1 = mo + (1 * 4 + q) * sm + ty * tw;
                    const float *m2 = mo + (2 * 4 + q) * sm + ty * tw, *m3 = mo + (3 * 4 + q) * sm + ty * tw;
                    for (int j = 0; j < tw; j++) {
                        t[0][q][j] = m0[j] + m1[j] + m2[j];
                        t[1][q][j] = m1[j] - m2[j] - m3[j];
                    }
                }
                for (int r = 0; r < 2; r++) {
                    float *row = p + (2 * ty + r) * w;
                    for (int j = 0; j < tw; j++) {
                        row[2 * j] = t[r][0][j] + t[r][1][j] + t[r][2][j] + b;
                        row[2 * j + 1] = t[r][1][j] - t[r][2][j] - t[r][3][j] + b;
                    }
                }
            }
        }
    }
}

static void ek_wino_output_adjoint_portable(int nb, int co, int h, int w, const float *dy, long sample_stride, float *dm, long T,
                            long sm) {
    const int th = h / 2, tw = w / 2;
    float e[2][tw], od[2][tw];
    for (int n = 0; n < nb; n++) {
        for (int o = 0; o < co; o++) {
            const float *p = dy + n * sample_stride + (long)o * h * w;
            float *mo = dm + (long)o * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                for (int r = 0; r < 2; r++) {
                    const float *row = p + (2 * ty + r) * w;
                    for (int j = 0; j < tw; j++) { e[r][j] = row[2 * j]; od[r][j] = row[2 * j + 1]; }
                }
                /* dt[r][q] over the tile's columns, then dm[R][q] over its rows. */
                for (int q = 0; q < 4; q++) {
                    float *d0 = mo + (0 * 4 + q) * sm + ty * tw, *d1 = mo + (1 * 4 + q) * sm + ty * tw;
                    float *d2 = mo + (2 * 4 + q) * sm + ty * tw, *d3 = mo + (3 * 4 + q) * sm + ty * tw;
                    for (int j = 0; j < tw; j++) {
                        float a0, a1;
                        switch (q) {
                        case 0: a0 = e[0][j]; a1 = e[1][j]; break;
                        case 1: a0 = e[0][j] + od[0][j]; a1 = e[1][j] + od[1][j]; break;
                        case 2: a0 = e[0][j] - od[0][j]; a1 = e[1][j] - od[1][j]; break;
                        default: a0 = -od[0][j]; a1 = -od[1][j]; break;
                        }
                        d0[j] = a0;
                        d1[j] = a0 + a1;
                        d2[j] = a0 - a1;
                        d3[j] = -a1;
                    }
                }
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define WV_TARGET __attribute__((target("avx512f,avx512vl,avx512dq")))

static inline __mmask16 wv_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

/* Lane j of the even / odd / next-even / next-odd elements of a 32-float row held as (lo, hi). */
#define WV_IDX(k) _mm512_setr_epi32(k(0), k(1), k(2), k(3), k(4), k(5), k(6), k(7), k(8), k(9), k(10), k(11), k(12), \
                                    k(13), k(14), k(15))
#define WV_E(j) (2 * (j))
#define WV_O(j) (2 * (j) + 1)
#define WV_E1(j) ((2 * (j) + 2) & 31)
#define WV_O1(j) ((2 * (j) + 3) & 31)
#define WV_IL(j) (((j) & 1) ? 16 + (j) / 2 : (j) / 2)
#define WV_IH(j) (((j) & 1) ? 24 + (j) / 2 : 8 + (j) / 2)
#define WV_M1(j) (((j) + 15) & 15)

/* The same operations in the same order as the portable loops, sixteen tiles of a tile row at a time. */
WV_TARGET static void wino_input_avx(int nb, int c, int h, int w, const float *x, long sample_stride, float *v, long T,
                                     long sv) {
    const int th = h / 2, tw = w / 2, wp = w + 2;
    const __m512i ie = WV_IDX(WV_E), io = WV_IDX(WV_O), ie1 = WV_IDX(WV_E1), io1 = WV_IDX(WV_O1);
    const __mmask16 lo = wv_lanes(wp), hi = wv_lanes(wp - 16), mt = wv_lanes(tw);
    float pad[(h + 2) * wp + 32];
    memset(pad, 0, sizeof pad);
    for (int n = 0; n < nb; n++) {
        for (int ch = 0; ch < c; ch++) {
            wino_pad_plane(pad, x + n * sample_stride + (long)ch * h * w, h, w);
            float *vc = v + (long)ch * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                const float *r = pad + 2 * ty * wp;
                __m512 a[4], b[4];
                for (int k = 0; k < 4; k++) {
                    a[k] = _mm512_maskz_loadu_ps(lo, r + k * wp);
                    b[k] = _mm512_maskz_loadu_ps(hi, r + k * wp + 16);
                }
                __m512 ta[4] = {_mm512_sub_ps(a[0], a[2]), _mm512_add_ps(a[1], a[2]), _mm512_sub_ps(a[2], a[1]),
                                _mm512_sub_ps(a[1], a[3])};
                __m512 tb[4] = {_mm512_sub_ps(b[0], b[2]), _mm512_add_ps(b[1], b[2]), _mm512_sub_ps(b[2], b[1]),
                                _mm512_sub_ps(b[1], b[3])};
                for (int k = 0; k < 4; k++) {
                    const __m512 e = _mm512_permutex2var_ps(ta[k], ie, tb[k]), o = _mm512_permutex2var_ps(ta[k], io, tb[k]);
                    const __m512 e1 = _mm512_permutex2var_ps(ta[k], ie1, tb[k]), o1 = _mm512_permutex2var_ps(ta[k], io1, tb[k]);
                    float *d = vc + (k * 4) * sv + ty * tw;
                    _mm512_mask_storeu_ps(d, mt, _mm512_sub_ps(e, e1));
                    _mm512_mask_storeu_ps(d + sv, mt, _mm512_add_ps(o, e1));
                    _mm512_mask_storeu_ps(d + 2 * sv, mt, _mm512_sub_ps(e1, o));
                    _mm512_mask_storeu_ps(d + 3 * sv, mt, _mm512_sub_ps(o, o1));
                }
            }
        }
    }
}

WV_TARGET static void wino_input_adjoint_avx(int nb, int c, int h, int w, const float *dv, long T, long sv, float *dx,
                                             long sample_stride, int accumulate) {
    const int th = h / 2, tw = w / 2, wp = w + 2;
    const __m512i il = WV_IDX(WV_IL), ih = WV_IDX(WV_IH), m1 = WV_IDX(WV_M1);
    const __mmask16 lo = wv_lanes(wp), hi = wv_lanes(wp - 16), mt = wv_lanes(tw);
    float pad[(h + 2) * wp + 32];
    for (int n = 0; n < nb; n++) {
        for (int ch = 0; ch < c; ch++) {
            memset(pad, 0, sizeof pad);
            const float *vc = dv + (long)ch * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                __m512 ev[4], od[4];
                for (int k = 0; k < 4; k++) {
                    const float *s = vc + (k * 4) * sv + ty * tw;
                    const __m512 s0 = _mm512_maskz_loadu_ps(mt, s), s1 = _mm512_maskz_loadu_ps(mt, s + sv);
                    const __m512 s2 = _mm512_maskz_loadu_ps(mt, s + 2 * sv), s3 = _mm512_maskz_loadu_ps(mt, s + 3 * sv);
                    const __m512 next = _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(_mm512_setzero_ps(), s0), s1), s2);
                    const __m512 own = _mm512_add_ps(_mm512_sub_ps(s1, s2), s3);
                    ev[k] = _mm512_add_ps(s0, _mm512_maskz_permutexvar_ps(0xFFFE, m1, next));
                    od[k] = _mm512_add_ps(own, _mm512_maskz_permutexvar_ps(0xFFFE, m1, _mm512_sub_ps(_mm512_setzero_ps(), s3)));
                }
                const __m512 z = _mm512_setzero_ps();
                const __m512 ce[4] = {ev[0], _mm512_add_ps(_mm512_sub_ps(ev[1], ev[2]), ev[3]),
                                      _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(z, ev[0]), ev[1]), ev[2]), _mm512_sub_ps(z, ev[3])};
                const __m512 co[4] = {od[0], _mm512_add_ps(_mm512_sub_ps(od[1], od[2]), od[3]),
                                      _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(z, od[0]), od[1]), od[2]), _mm512_sub_ps(z, od[3])};
                float *r = pad + 2 * ty * wp;
                for (int k = 0; k < 4; k++) {
                    float *row = r + k * wp;
                    const __m512 l = _mm512_permutex2var_ps(ce[k], il, co[k]), u = _mm512_permutex2var_ps(ce[k], ih, co[k]);
                    _mm512_mask_storeu_ps(row, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, row), l));
                    _mm512_mask_storeu_ps(row + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, row + 16), u));
                }
            }
            float *p = dx + n * sample_stride + (long)ch * h * w;
            const __mmask16 wl = wv_lanes(w), wh = wv_lanes(w - 16);
            for (int y = 0; y < h; y++) {
                const float *src = pad + (y + 1) * wp + 1;
                float *dst = p + y * w;
                __m512 l = _mm512_maskz_loadu_ps(wl, src), u = _mm512_maskz_loadu_ps(wh, src + 16);
                if (accumulate) {
                    l = _mm512_add_ps(_mm512_maskz_loadu_ps(wl, dst), l);
                    u = _mm512_add_ps(_mm512_maskz_loadu_ps(wh, dst + 16), u);
                }
                _mm512_mask_storeu_ps(dst, wl, l);
                _mm512_mask_storeu_ps(dst + 16, wh, u);
            }
        }
    }
}

WV_TARGET static void wino_output_avx(int nb, int co, int h, int w, const float *m, long T, long sm, const float *bias,
                                      float *y, long sample_stride) {
    const int th = h / 2, tw = w / 2;
    const __m512i il = WV_IDX(WV_IL), ih = WV_IDX(WV_IH);
    const __mmask16 mt = wv_lanes(tw), wl = wv_lanes(w), wh = wv_lanes(w - 16);
    for (int n = 0; n < nb; n++) {
        for (int o = 0; o < co; o++) {
            const __m512 b = _mm512_set1_ps(bias ? bias[o] : 0.0f);
            const float *mo = m + (long)o * T + (long)n * th * tw;
            float *p = y + n * sample_stride + (long)o * h * w;
            for (int ty = 0; ty < th; ty++) {
                __m512 t0[4], t1[4];
                for (int q = 0; q < 4; q++) {
                    const float *s = mo + q * sm + ty * tw;
                    const __m512 m0 = _mm512_maskz_loadu_ps(mt, s), m1 = _mm512_maskz_loadu_ps(mt, s + 4 * sm);
                    const __m512 m2 = _mm512_maskz_loadu_ps(mt, s + 8 * sm), m3 = _mm512_maskz_loadu_ps(mt, s + 12 * sm);
                    t0[q] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    t1[q] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                for (int r = 0; r < 2; r++) {
                    const __m512 *t = r ? t1 : t0;
                    const __m512 ye = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]), b);
                    const __m512 yo = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]), b);
                    float *row = p + (2 * ty + r) * w;
                    _mm512_mask_storeu_ps(row, wl, _mm512_permutex2var_ps(ye, il, yo));
                    _mm512_mask_storeu_ps(row + 16, wh, _mm512_permutex2var_ps(ye, ih, yo));
                }
            }
        }
    }
}

WV_TARGET static void wino_output_adjoint_avx(int nb, int co, int h, int w, const float *dy, long sample_stride, float *dm,
                                              long T, long sm) {
    const int th = h / 2, tw = w / 2;
    const __m512i ie = WV_IDX(WV_E), io = WV_IDX(WV_O);
    const __mmask16 mt = wv_lanes(tw), wl = wv_lanes(w), wh = wv_lanes(w - 16);
    for (int n = 0; n < nb; n++) {
        for (int o = 0; o < co; o++) {
            const float *p = dy + n * sample_stride + (long)o * h * w;
            float *mo = dm + (long)o * T + (long)n * th * tw;
            for (int ty = 0; ty < th; ty++) {
                __m512 e[2], od[2];
                for (int r = 0; r < 2; r++) {
                    const float *row = p + (2 * ty + r) * w;
                    const __m512 l = _mm512_maskz_loadu_ps(wl, row), u = _mm512_maskz_loadu_ps(wh, row + 16);
                    e[r] = _mm512_permutex2var_ps(l, ie, u);
                    od[r] = _mm512_permutex2var_ps(l, io, u);
                }
                const __m512 z = _mm512_setzero_ps();
                const __m512 a0[4] = {e[0], _mm512_add_ps(e[0], od[0]), _mm512_sub_ps(e[0], od[0]), _mm512_sub_ps(z, od[0])};
                const __m512 a1[4] = {e[1], _mm512_add_ps(e[1], od[1]), _mm512_sub_ps(e[1], od[1]), _mm512_sub_ps(z, od[1])};
                for (int q = 0; q < 4; q++) {
                    float *d = mo + q * sm + ty * tw;
                    _mm512_mask_storeu_ps(d, mt, a0[q]);
                    _mm512_mask_storeu_ps(d + 4 * sm, mt, _mm512_add_ps(a0[q], a1[q]));
                    _mm512_mask_storeu_ps(d + 8 * sm, mt, _mm512_sub_ps(a0[q], a1[q]));
                    _mm512_mask_storeu_ps(d + 12 * sm, mt, _mm512_sub_ps(z, a1[q]));
                }
            }
        }
    }
}

/* Sixteen filters (consecutive input channels of one output channel) per step: their 9 taps gathered, the 16
 * transformed values stored contiguously in each U_t. */
WV_TARGET static void wino_filter_avx(int co, int ci, const float *w, float *u, long su) {
    const __m512i idx = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135);
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int o = 0; o < co; o++) {
        float *uo = u + (size_t)o * ci;
        for (int c = 0; c < ci; c += 16) {
            const __mmask16 m = wv_lanes(ci - c);
            const float *g = w + ((size_t)o * ci + c) * 9;
            __m512 t[4][3];
            for (int j = 0; j < 3; j++) {
                const __m512 a = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + j, 4);
                const __m512 b = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + 3 + j, 4);
                const __m512 d = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + 6 + j, 4);
                t[0][j] = a;
                t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), d));
                t[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), d));
                t[3][j] = d;
            }
            for (int r = 0; r < 4; r++) {
                const __m512 a = t[r][0], b = t[r][1], d = t[r][2];
                _mm512_mask_storeu_ps(uo + (r * 4 + 0) * su + c, m, a);
                _mm512_mask_storeu_ps(uo + (r * 4 + 1) * su + c, m, _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), d)));
                _mm512_mask_storeu_ps(uo + (r * 4 + 2) * su + c, m, _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), d)));
                _mm512_mask_storeu_ps(uo + (r * 4 + 3) * su + c, m, d);
            }
        }
    }
}

WV_TARGET static void wino_filter_adjoint_avx(int co, int ci, const float *du, long su, float *dw) {
    const __m512i idx = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99, 108, 117, 126, 135);
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int o = 0; o < co; o++) {
        const float *uo = du + (size_t)o * ci;
        for (int c = 0; c < ci; c += 16) {
            const __mmask16 m = wv_lanes(ci - c);
            __m512 t[4][3];
            for (int r = 0; r < 4; r++) {
                const __m512 u0 = _mm512_maskz_loadu_ps(m, uo + (r * 4 + 0) * su + c);
                const __m512 u1 = _mm512_maskz_loadu_ps(m, uo + (r * 4 + 1) * su + c);
                const __m512 u2 = _mm512_maskz_loadu_ps(m, uo + (r * 4 + 2) * su + c);
                const __m512 u3 = _mm512_maskz_loadu_ps(m, uo + (r * 4 + 3) * su + c);
                const __m512 h1 = _mm512_mul_ps(half, u1), h2 = _mm512_mul_ps(half, u2);
                t[r][0] = _mm512_add_ps(_mm512_add_ps(u0, h1), h2);
                t[r][1] = _mm512_sub_ps(h1, h2);
                t[r][2] = _mm512_add_ps(_mm512_add_ps(h1, h2), u3);
            }
            float *g = dw + ((size_t)o * ci + c) * 9;
            for (int j = 0; j < 3; j++) {
                const __m512 h1 = _mm512_mul_ps(half, t[1][j]), h2 = _mm512_mul_ps(half, t[2][j]);
                _mm512_mask_i32scatter_ps(g + j, m, idx, _mm512_add_ps(_mm512_add_ps(t[0][j], h1), h2), 4);
                _mm512_mask_i32scatter_ps(g + 3 + j, m, idx, _mm512_sub_ps(h1, h2), 4);
                _mm512_mask_i32scatter_ps(g + 6 + j, m, idx, _mm512_add_ps(_mm512_add_ps(h1, h2), t[3][j]), 4);
            }
        }
    }
}
#define WV_HAVE 1
#else
#define WV_HAVE 0
#endif

void ek_wino_input(int nb, int c, int h, int w, const float *x, long sample_stride, float *v, long T, long sv) {
#if WV_HAVE
    if (use_vector(w)) { wino_input_avx(nb, c, h, w, x, sample_stride, v, T, sv); return; }
#endif
    ek_wino_input_portable(nb, c, h, w, x, sample_stride, v, T, sv);
}

void ek_wino_input_adjoint(int nb, int c, int h, int w, const float *dv, long T, long sv, float *dx,
                           long sample_stride, int accumulate) {
#if WV_HAVE
    if (use_vector(w)) { wino_input_adjoint_avx(nb, c, h, w, dv, T, sv, dx, sample_stride, accumulate); return; }
#endif
    ek_wino_input_adjoint_portable(nb, c, h, w, dv, T, sv, dx, sample_stride, accumulate);
}

void ek_wino_output(int nb, int co, int h, int w, const float *m, long T, long sm, const float *bias, float *y,
                    long sample_stride) {
#if WV_HAVE
    if (use_vector(w)) { wino_output_avx(nb, co, h, w, m, T, sm, bias, y, sample_stride); return; }
#endif
    ek_wino_output_portable(nb, co, h, w, m, T, sm, bias, y, sample_stride);
}

void ek_wino_output_adjoint(int nb, int co, int h, int w, const float *dy, long sample_stride, float *dm, long T,
                            long sm) {
#if WV_HAVE
    if (use_vector(w)) { wino_output_adjoint_avx(nb, co, h, w, dy, sample_stride, dm, T, sm); return; }
#endif
    ek_wino_output_adjoint_portable(nb, co, h, w, dy, sample_stride, dm, T, sm);
}

void ek_wino_filter(int co, int ci, const float *w, float *u, long su) {
#if WV_HAVE
    if (vector_on()) { wino_filter_avx(co, ci, w, u, su); return; }
#endif
    ek_wino_filter_portable(co, ci, w, u, su);
}

void ek_wino_filter_adjoint(int co, int ci, const float *du, long su, float *dw) {
#if WV_HAVE
    if (vector_on()) { wino_filter_adjoint_avx(co, ci, du, su, dw); return; }
#endif
    ek_wino_filter_adjoint_portable(co, ci, du, su, dw);
}
