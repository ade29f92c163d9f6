/* Layered sum-product check updates for cext/ldpc_layered.pyx (documented there and in
 * timetag/distill/decoder.py).  A check is updated by ldpc_check (scalar); a group of 8 checks with disjoint
 * variables and one degree, its edges stored lane by lane (edge k of lane j at e0 + 8 k + j), by ldpc_group8:
 * with AVX2 the 8 checks are the 8 lanes of one vector; without, the same 8 checks one after the other.  Disjoint
 * checks commute in the layered schedule and every lane does the scalar arithmetic in the scalar order, so both
 * give the same bits (tests/distill/test_decoder.py checks it). */
#ifndef LDPC_LAYERED_KERNELS_H
#define LDPC_LAYERED_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LDPC_X86 1
#else
#define LDPC_X86 0
#endif

typedef struct {
    const float *value;
    float lo;        /* added to every |x|: index 0 is the cell of lo */
    float hi;        /* arguments are clipped here */
    uint32_t shift;  /* 23 - mantissa bits kept */
    uint32_t base;   /* (bits of lo) >> shift */
} ldpc_table;

static inline uint32_t ldpc_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float ldpc_float(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

static inline float ldpc_phi(const ldpc_table *t, float x)
{
    float y = fabsf(x) + t->lo;
    if (y > t->hi)
        y = t->hi;
    return t->value[(ldpc_bits(y) >> t->shift) - t->base];
}

/* One check of degree deg, edges e0, e0 + stride, ...; returns 1 when the check is left unsatisfied. */
static inline uint32_t ldpc_check(const int32_t *var, float *R, float *L, const ldpc_table *t, uint32_t syn,
                                  int e0, int deg, int stride, float *qbuf, float *pbuf)
{
    uint32_t neg = syn, par = syn;
    float total = 0.0f;
    for (int k = 0; k < deg; k++) {
        int e = e0 + k * stride;
        float q = L[var[e]] - R[e];
        qbuf[k] = q;
        neg ^= ldpc_bits(q) >> 31;
        float p = ldpc_phi(t, q);
        pbuf[k] = p;
        total = total + p;
    }
    for (int k = 0; k < deg; k++) {
        int e = e0 + k * stride;
        float q = qbuf[k];
        /* sign: the check's parity times the other edges' signs = neg times this edge's sign */
        float r = ldpc_float(ldpc_bits(ldpc_phi(t, total - pbuf[k])) | ((neg ^ (ldpc_bits(q) >> 31)) << 31));
        float lv = q + r;  /* |L| stays below |prior| + 9.01 x degree: no clip needed */
        par ^= ldpc_bits(lv) >> 31;
        L[var[e]] = lv;
        R[e] = r;
    }
    return par;
}

static uint32_t ldpc_group8_scalar(const int32_t *var, float *R, float *L, const ldpc_table *t, const uint8_t *syn,
                                   int e0, int deg, float *qbuf, float *pbuf)
{
    uint32_t unsat = 0;
    for (int j = 0; j < 8; j++)
        unsat += ldpc_check(var, R, L, t, syn[j], e0 + j, deg, 8, qbuf, pbuf);
    return unsat;
}

#if LDPC_X86
__attribute__((target("avx2")))
static uint32_t ldpc_group8_avx2(const int32_t *var, float *R, float *L, const ldpc_table *t, const uint8_t *syn,
                                 int e0, int deg, float *qbuf, float *pbuf)
{
    const __m256i sign = _mm256_set1_epi32((int32_t)0x80000000u);
    const __m256i magn = _mm256_set1_epi32(0x7fffffff);
    const __m256 lo = _mm256_set1_ps(t->lo), hi = _mm256_set1_ps(t->hi);
    const __m256i base = _mm256_set1_epi32((int32_t)t->base);
    const __m128i shift = _mm_cvtsi32_si128((int)t->shift);
    __m256i s = _mm256_slli_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)syn)), 31);
    __m256i neg = s, par = s;
    __m256 total = _mm256_setzero_ps();
    float lv8[8];
    for (int k = 0; k < deg; k++) {
        const int32_t *v = var + e0 + 8 * k;
        __m256i idx = _mm256_loadu_si256((const __m256i *)v);
        __m256 q = _mm256_sub_ps(_mm256_i32gather_ps(L, idx, 4), _mm256_loadu_ps(R + e0 + 8 * k));
        _mm256_storeu_ps(qbuf + 8 * k, q);
        __m256i qi = _mm256_castps_si256(q);
        neg = _mm256_xor_si256(neg, _mm256_and_si256(qi, sign));
        __m256 y = _mm256_min_ps(_mm256_add_ps(_mm256_castsi256_ps(_mm256_and_si256(qi, magn)), lo), hi);
        __m256i ti = _mm256_sub_epi32(_mm256_srl_epi32(_mm256_castps_si256(y), shift), base);
        __m256 p = _mm256_i32gather_ps(t->value, ti, 4);
        _mm256_storeu_ps(pbuf + 8 * k, p);
        total = _mm256_add_ps(total, p);
    }
    for (int k = 0; k < deg; k++) {
        const int32_t *v = var + e0 + 8 * k;
        __m256 q = _mm256_loadu_ps(qbuf + 8 * k);
        __m256i d = _mm256_castps_si256(_mm256_sub_ps(total, _mm256_loadu_ps(pbuf + 8 * k)));
        __m256 y = _mm256_min_ps(_mm256_add_ps(_mm256_castsi256_ps(_mm256_and_si256(d, magn)), lo), hi);
        __m256i ti = _mm256_sub_epi32(_mm256_srl_epi32(_mm256_castps_si256(y), shift), base);
        __m256i mag = _mm256_castps_si256(_mm256_i32gather_ps(t->value, ti, 4));
        __m256i sg = _mm256_xor_si256(neg, _mm256_and_si256(_mm256_castps_si256(q), sign));
        __m256 r = _mm256_castsi256_ps(_mm256_or_si256(mag, sg));
        __m256 lv = _mm256_add_ps(q, r);
        par = _mm256_xor_si256(par, _mm256_and_si256(_mm256_castps_si256(lv), sign));
        _mm256_storeu_ps(R + e0 + 8 * k, r);
        _mm256_storeu_ps(lv8, lv);
        for (int j = 0; j < 8; j++)
            L[v[j]] = lv8[j];
    }
    return (uint32_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(par)));
}

static int ldpc_have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
static uint32_t ldpc_group8_avx2(const int32_t *var, float *R, float *L, const ldpc_table *t, const uint8_t *syn,
                                 int e0, int deg, float *qbuf, float *pbuf)
{
    return ldpc_group8_scalar(var, R, L, t, syn, e0, deg, qbuf, pbuf);
}

static int ldpc_have_avx2(void) { return 0; }
#endif

#endif
