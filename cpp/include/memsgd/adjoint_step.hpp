// Per-component step kernels of the adjoint (docs/math.md §3 and §8 "Adjoint"), fixed state size
// N = M + 1, used by cpp/src/adjoint.cpp only.
//
// The FORWARD part of this file duplicates the per-component step of the engine (evolve.cpp,
// step_block): same formulas, same operation order. It lives here until the engine exposes its
// per-component step; then `forward_component` and `StepCoeffs` should be replaced by the
// engine's and this header keeps only the backward step.
#pragma once

#include <algorithm>
#include <cstddef>

#include "memsgd/evolve.hpp"

#define MEMSGD_ADJ_UNROLL _Pragma("GCC unroll 16")

namespace memsgd {
namespace adjoint_detail {

// Position of entry (i, j), i <= j, in the packed upper triangle of a symmetric N x N matrix.
constexpr int packed(int N, int i, int j) { return i * N - i * (i - 1) / 2 + (j - i); }

// ZeroE: every step has e = 0 (h = E1), known at compile time. The kernels then skip the
// products with the zero entries of h; IEEE arithmetic gives the same bits as the general
// formulas (x * 0 + y == y for finite x), so the two variants agree exactly.

// ============================ forward step (duplicates the engine) ============================

// S0, g, h of one step (docs/math.md §2.1): S_lambda = S0 - lambda g h^T.
template <int N>
struct StepCoeffs {
  double S0[N][N];
  double g[N];
  double h[N];
};

template <int N>
inline StepCoeffs<N> step_coeffs(const AlgorithmParams& p, std::size_t t) {
  constexpr int M = N - 1;
  const std::size_t s = std::min(t, p.steps_stored - 1);
  StepCoeffs<N> q{};
  q.S0[0][0] = 1.0;
  q.g[0] = p.alpha[s];
  q.h[0] = 1.0;
  for (int i = 0; i < M; ++i) {
    q.S0[0][i + 1] = p.b[s * M + i];
    q.S0[i + 1][0] = 0.0;
    q.g[i + 1] = p.c[s * M + i];
    q.h[i + 1] = p.e[s * M + i];
    for (int j = 0; j < M; ++j) q.S0[i + 1][j + 1] = p.D[(s * M + i) * M + j];
  }
  return q;
}

// y = S x S^T + l (coupling_a - self_noise l h^T x h) g g^T for one component (x, y symmetric,
// both triangles filled). coupling_a = (tau1/B_t) a_t, self_noise = tau2/B_t.
template <int N, bool ZeroE>
inline void forward_component(const StepCoeffs<N>& q, double l, double coupling_a, double self_noise,
                              const double (&x)[N][N], double (&y)[N][N]) {
  double S[N][N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j) S[i][j] = (ZeroE && j > 0) ? q.S0[i][j] : q.S0[i][j] - l * q.g[i] * q.h[j];
  double hxh = 0.0;
  if (ZeroE) {
    hxh = x[0][0];
  } else {
    MEMSGD_ADJ_UNROLL
    for (int i = 0; i < N; ++i) {
      double row = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int j = 0; j < N; ++j) row += x[i][j] * q.h[j];
      hxh += q.h[i] * row;
    }
  }
  double Z[N][N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j) {
      double acc = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int m = 0; m < N; ++m) acc += S[i][m] * x[m][j];
      Z[i][j] = acc;
    }
  const double noise = l * (coupling_a - self_noise * l * hxh);
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = i; j < N; ++j) {
      double acc = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int m = 0; m < N; ++m) acc += Z[i][m] * S[j][m];
      y[i][j] = acc + noise * q.g[i] * q.g[j];
      y[j][i] = y[i][j];
    }
}

// ======================================= backward step =======================================

// Layout of the per-step sums the backward step accumulates over components (each term
// carries the node weight m_k), with W = Ybar S X, q = g^T Ybar g, n the noise coefficient:
//   A  = sum m W[:, 1:]                              (N x M)  dJ/db = 2 A[0, :], dJ/dD = 2 A[1:, :]
//   G  = sum m (n Ybar g - l W h)                    (N)      dJ/dg = 2 G
//   E  = -sum m l ((W^T g)[1:] + c2 l q (X h)[1:])   (M)      dJ/de = 2 E + 2 abar Rh
//   Rh = sum m l (X h)[1:]                           (M)      (abar is only known after the sums)
//   Q1 = sum m l q,  Q2 = sum m q l^2 h^T X h                 dJ/dc1 = a_t Q1, dJ/dc2 = -Q2
// dJ/dS0 = 2 sum m W; through S = S0 - l g h^T, dJ/dg gets -2 sum m l W h and dJ/dh gets
// -2 sum m l W^T g; the noise term n g g^T adds 2 sum m n Ybar g to dJ/dg and, through n's
// h^T X h, -2 c2 sum m q l^2 X h to dJ/dh; a_t adds 2 abar sum m l X h to dJ/dh.
struct SumLayout {
  explicit constexpr SumLayout(int n)
      : N(n), M(n - 1), A(0), G(n * (n - 1)), E(G + n), Rh(E + n - 1), Q1(Rh + n - 1), Q2(Q1 + 1), size(Q2 + 1) {}
  int N, M, A, G, E, Rh, Q1, Q2, size;
};

// One backward step for one component. In: x = X_t, yt = Ytilde_{t+1} (the adjoint of X_{t+1}
// without its a_{t+1} term, added here as abar_next_l h_{t+1} h_{t+1}^T with abar_next_l =
// abar_{t+1} l). Out: yt overwritten with
//     Ytilde_t = S^T Ybar S - (tau2/B_t) l^2 q h h^T + (w_t/2) l E11,
// and this component's terms of the sums written to sum[r * stride] (weighted by m).
// coupling_a = (tau1/B_t) a_t, self_noise = tau2/B_t.
template <int N, bool ZeroE>
inline void backward_component(const StepCoeffs<N>& q, const double (&h_next)[N], double abar_next_l,
                               double l, double m, double coupling_a, double self_noise, double w_half,
                               const double (&x)[N][N], double (&yt)[N][N], double* sum, std::size_t stride) {
  constexpr int M = N - 1;
  constexpr SumLayout L(N);
  double Y[N][N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j)
      Y[i][j] = ZeroE ? yt[i][j] + (i == 0 && j == 0 ? abar_next_l : 0.0)
                      : yt[i][j] + abar_next_l * h_next[i] * h_next[j];
  double S[N][N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j) S[i][j] = (ZeroE && j > 0) ? q.S0[i][j] : q.S0[i][j] - l * q.g[i] * q.h[j];
  double Xh[N], Yg[N];
  double hxh = 0.0, gyg = 0.0;
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i) {
    double s = 0.0;
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j) s += Y[i][j] * q.g[j];
    Yg[i] = s;
    gyg += q.g[i] * s;
    if (ZeroE) {
      Xh[i] = x[i][0];
    } else {
      double r = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int j = 0; j < N; ++j) r += x[i][j] * q.h[j];
      Xh[i] = r;
      hxh += q.h[i] * r;
    }
  }
  if (ZeroE) hxh = x[0][0];
  // P = Ybar S; Ytilde_t = S^T P + rank-one terms.
  double P[N][N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = 0; j < N; ++j) {
      double acc = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int k = 0; k < N; ++k) acc += Y[i][k] * S[k][j];
      P[i][j] = acc;
    }
  const double self_q = self_noise * l * l * gyg;
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i)
    MEMSGD_ADJ_UNROLL
    for (int j = i; j < N; ++j) {
      double acc = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int k = 0; k < N; ++k) acc += S[k][i] * P[k][j];
      if (!ZeroE) acc -= self_q * q.h[i] * q.h[j];
      if (i == 0 && j == 0) acc += w_half * l - (ZeroE ? self_q : 0.0);
      yt[i][j] = acc;
      yt[j][i] = acc;
    }
  const double noise = l * (coupling_a - self_noise * l * hxh);
  const double ml = m * l, mn = m * noise, mql2 = ml * l * gyg;
  // W[:, 1:] = P X[:, 1:];  W h = P (X h);  W^T g = X (S^T Ybar g) (X symmetric).
  double StYg[N];
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i) {
    double acc = 0.0;
    MEMSGD_ADJ_UNROLL
    for (int k = 0; k < N; ++k) acc += S[k][i] * Yg[k];
    StYg[i] = acc;
  }
  MEMSGD_ADJ_UNROLL
  for (int i = 0; i < N; ++i) {
    MEMSGD_ADJ_UNROLL
    for (int j = 1; j < N; ++j) {
      double acc = 0.0;
      MEMSGD_ADJ_UNROLL
      for (int k = 0; k < N; ++k) acc += P[i][k] * x[k][j];
      sum[(L.A + i * M + (j - 1)) * stride] = m * acc;
    }
    double wh = 0.0;
    MEMSGD_ADJ_UNROLL
    for (int k = 0; k < N; ++k) wh += P[i][k] * Xh[k];
    sum[(L.G + i) * stride] = mn * Yg[i] - ml * wh;
  }
  const double lq = self_noise * l * gyg;
  MEMSGD_ADJ_UNROLL
  for (int i = 1; i < N; ++i) {
    double wg = 0.0;
    MEMSGD_ADJ_UNROLL
    for (int k = 0; k < N; ++k) wg += x[i][k] * StYg[k];
    sum[(L.E + i - 1) * stride] = -ml * (wg + lq * Xh[i]);
    sum[(L.Rh + i - 1) * stride] = ml * Xh[i];
  }
  sum[L.Q1 * stride] = ml * gyg;
  sum[L.Q2 * stride] = mql2 * hxh;
}

}  // namespace adjoint_detail
}  // namespace memsgd
