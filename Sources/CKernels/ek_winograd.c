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

void ek_wino_filter(int co, int ci, const float *w, float *u, long su) {
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

void ek_wino_filter_adjoint(int co, int ci, const float *du, long su, float *dw) {
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

/* The padded plane (h + 2) x (w + 2) of one input channel: row-combined four rows at a time, then split into the even
 * and odd columns so the column combination is contiguous. */
void ek_wino_input(int nb, int c, int h, int w, const float *x, long sample_stride, float *v, long T, long sv) {
    const int th = h / 2, tw = w / 2, wp = w + 2;
    float pad[(h + 2) * wp];
    float ev[4][tw + 1], od[4][tw + 1];
    memset(pad, 0, sizeof pad);
    for (int n = 0; n < nb; n++) {
        for (int ch = 0; ch < c; ch++) {
            const float *p = x + n * sample_stride + (long)ch * h * w;
            for (int y = 0; y < h; y++) memcpy(pad + (y + 1) * wp + 1, p + y * w, sizeof(float) * w);
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

void ek_wino_input_adjoint(int nb, int c, int h, int w, const float *dv, long T, long sv, float *dx,
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

void ek_wino_output(int nb, int co, int h, int w, const float *m, long T, long sm, const float *bias, float *y,
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

void ek_wino_output_adjoint(int nb, int co, int h, int w, const float *dy, long sample_stride, float *dm, long T,
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
