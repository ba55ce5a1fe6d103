// The only file that knows about Python: converts arrays, checks shapes, releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <complex>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "memsgd/evolve.hpp"
#include "memsgd/long_horizon.hpp"
#include "memsgd/renewal.hpp"

namespace py = pybind11;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

Array as_array(const py::handle& obj, const char* name) {
  if (obj.is_none()) throw py::type_error(std::string(name) + " must be an array of floats, not None");
  // Look at the input's own dtype first: forcecast would silently drop imaginary parts,
  // parse strings and unwrap object arrays.
  py::array raw = py::array::ensure(obj);
  if (!raw) throw py::type_error(std::string(name) + " must be convertible to a float64 array");
  const char kind = raw.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(std::string(name) + " must be an array of real numbers (bool, integer or float dtype), got dtype kind '" +
                         std::string(1, kind) + "'");
  Array a = Array::ensure(raw);
  if (!a) throw py::type_error(std::string(name) + " must be convertible to a float64 array");
  return a;
}

// Physical memory in bytes (0 if unknown).
double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<double>(pages) * static_cast<double>(page);
#endif
  return 0.0;
}

// Refuse runs whose buffers cannot fit in memory instead of allocating (and, with
// overcommit, computing) for ever.
void require_fits(double bytes, const char* what) {
  const double phys = physical_memory_bytes();
  if (phys > 0 && bytes > phys)
    throw py::value_error(std::string(what) + " too large: the run needs " + std::to_string(bytes / 1e9) +
                          " GB, more than this machine's physical memory (" + std::to_string(phys / 1e9) +
                          " GB)");
}

void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error(message);
}

void require_shape(const Array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  std::string want = "(";
  for (auto s : shape) want += std::to_string(s) + ",";
  want += ")";
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  if (ok) {
    int i = 0;
    for (auto s : shape) ok = ok && a.shape(i++) == s;
  }
  require(ok, std::string(name) + " must have shape " + want);
}

void require_finite(const Array& a, const char* name) {
  const double* p = a.data();
  for (py::ssize_t i = 0; i < a.size(); ++i)
    require(std::isfinite(p[i]), std::string(name) + " must be finite");
}

py::tuple evolve(py::object eigenvalues, py::object weights, py::object scales, py::object alpha,
                 py::object b, py::object c, py::object D, py::object e, std::int64_t steps,
                 double coupling, double self_noise, bool initial_ggt, double limit,
                 memsgd::RunControl* control) {
  Array lam = as_array(eigenvalues, "eigenvalues"), w = as_array(weights, "weights"),
        sc = as_array(scales, "scales");
  Array al = as_array(alpha, "alpha"), bb = as_array(b, "b"), cc = as_array(c, "c"),
        DD = as_array(D, "D"), ee = as_array(e, "e");
  require(lam.ndim() == 1 && lam.size() > 0, "eigenvalues must be a non-empty 1-d array");
  const py::ssize_t K = lam.size();
  require_shape(w, "weights", {K});
  require_shape(sc, "scales", {K});
  require(al.ndim() == 1 && al.size() > 0, "alpha must be a non-empty 1-d array (one entry per step)");
  const py::ssize_t T = al.size();
  require(bb.ndim() == 2 && bb.shape(0) == T, "b must have shape (steps_stored, M)");
  const py::ssize_t M = bb.shape(1);
  require_shape(cc, "c", {T, M});
  require_shape(DD, "D", {T, M, M});
  require_shape(ee, "e", {T, M});
  require(steps >= 0, "steps must be >= 0");
  require(steps < (std::int64_t(1) << 40), "steps must be < 2**40");
  require(T == 1 || T >= steps, "steps must be <= the number of parameter rows: a schedule needs parameters for every step (steps_stored >= steps)");
  require(std::isfinite(coupling) && std::isfinite(self_noise), "coupling and self_noise must be finite");
  require(!std::isnan(limit), "limit must not be NaN (use inf for no divergence check)");
  {
    const double N = static_cast<double>(M) + 1.0;
    const double state = static_cast<double>(K) * N * N * 8.0;  // per-component second moments
    require_fits(2.0 * (static_cast<double>(steps) + 1.0) * 8.0 + state, "steps");
  }
  require_finite(lam, "eigenvalues");
  require_finite(w, "weights");
  require_finite(sc, "scales");
  require_finite(al, "alpha");
  require_finite(bb, "b");
  require_finite(cc, "c");
  require_finite(DD, "D");
  require_finite(ee, "e");

  memsgd::Nodes nodes{static_cast<std::size_t>(K), lam.data(), w.data(), sc.data()};
  memsgd::AlgorithmParams params;
  params.memory = static_cast<int>(M);
  params.steps_stored = static_cast<std::size_t>(T);
  params.alpha = al.data();
  params.b = bb.data();
  params.c = cc.data();
  params.D = DD.data();
  params.e = ee.data();
  memsgd::EvolveOptions options;
  options.coupling = coupling;
  options.self_noise = self_noise;
  options.initial = initial_ggt ? memsgd::InitialState::GGt : memsgd::InitialState::E11;
  // evolve.hpp documents "r0 above limit or not finite marks divergence"; the kernel tests
  // !(r0 <= limit), which lets r0 = inf pass when limit = inf. Clamp so that it cannot.
  options.limit = std::min(limit, std::numeric_limits<double>::max());
  options.control = control;

  Array r0(steps + 1), r1(steps + 1);
  double* p0 = r0.mutable_data();
  double* p1 = r1.mutable_data();
  std::int64_t diverged;
  {
    py::gil_scoped_release release;
    diverged = memsgd::evolve(nodes, params, static_cast<std::size_t>(steps), options, p0, p1);
  }
  if (control != nullptr && control->cancel.load()) throw std::runtime_error("run cancelled");
  {
    // An overflowed step can leave r1 = inf - inf = NaN one step before r0 overflows; the sums
    // are of nonnegative terms in exact arithmetic, so report the overflow as inf, never NaN.
    for (std::int64_t t = 0; t <= steps; ++t) {
      if (std::isnan(p0[t])) p0[t] = std::numeric_limits<double>::infinity();
      if (std::isnan(p1[t])) p1[t] = std::numeric_limits<double>::infinity();
    }
  }
  return py::make_tuple(r0, r1, diverged);
}

py::tuple renewal(py::object U, py::object U_prime, py::object V, py::object V_prime,
                  const std::string& method) {
  Array u = as_array(U, "U"), up = as_array(U_prime, "U_prime"), v = as_array(V, "V"),
        vp = as_array(V_prime, "V_prime");
  require(u.ndim() == 1, "U must be a 1-d array");
  const py::ssize_t n = u.size();
  require_shape(up, "U_prime", {n});
  require_shape(v, "V", {n});
  require_shape(vp, "V_prime", {n});
  require_finite(u, "U");
  require_finite(up, "U_prime");
  require_finite(v, "V");
  require_finite(vp, "V_prime");
  require(method == "direct" || method == "fft", "method must be 'direct' or 'fft'");
  Array L(n), l(n);
  double* pL = L.mutable_data();
  double* pl = l.mutable_data();
  {
    py::gil_scoped_release release;
    if (method == "fft")
      memsgd::renewal_fft(static_cast<std::size_t>(n), u.data(), up.data(), v.data(), vp.data(), pL, pl);
    else
      memsgd::renewal_direct(static_cast<std::size_t>(n), u.data(), up.data(), v.data(), vp.data(), pL, pl);
  }
  return py::make_tuple(L, l);
}

}  // namespace

// ============================================================================================
// Renewal solver with progress, cancellation and error bound; long-horizon generating
// functions. (Block owned by the `long` work: renewal.hpp, long_horizon.hpp.)
// ============================================================================================
namespace {

memsgd::RenewalMethod renewal_method(const std::string& method) {
  require(method == "direct" || method == "fft", "method must be 'direct' or 'fft'");
  return method == "fft" ? memsgd::RenewalMethod::Fft : memsgd::RenewalMethod::Direct;
}

// (L, l, error or None). The same array passed for U and U_prime (V and V_prime) is convolved once.
py::tuple solve_renewal(py::object U, py::object U_prime, py::object V, py::object V_prime,
                        const std::string& method, memsgd::RunControl* control, bool with_error) {
  Array u = as_array(U, "U"), v = as_array(V, "V");
  Array up = U_prime.is(U) ? u : as_array(U_prime, "U_prime");
  Array vp = V_prime.is(V) ? v : as_array(V_prime, "V_prime");
  require(u.ndim() == 1, "U must be a 1-d array");
  const py::ssize_t n = u.size();
  require_shape(up, "U_prime", {n});
  require_shape(v, "V", {n});
  require_shape(vp, "V_prime", {n});
  require_finite(u, "U");
  require_finite(up, "U_prime");
  require_finite(v, "V");
  require_finite(vp, "V_prime");
  memsgd::RenewalOptions options;
  options.method = renewal_method(method);
  options.control = control;
  Array L(n), l(n);
  Array error(with_error ? n : 0);
  bool done;
  {
    py::gil_scoped_release release;
    const std::size_t m = static_cast<std::size_t>(n);
    done = memsgd::solve_renewal(m, u.data(), up.data(), v.data(), vp.data(), L.mutable_data(),
                                 l.mutable_data(), options);
    if (done && with_error) {
      options.progress_base = m;
      done = memsgd::renewal_error_bound(m, u.data(), up.data(), v.data(), vp.data(), L.data(),
                                         l.data(), error.mutable_data(), options);
    }
  }
  if (!done) throw std::runtime_error("run cancelled");
  return py::make_tuple(L, l, with_error ? py::object(error) : py::object(py::none()));
}

using ComplexArray = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// A stationary algorithm (alpha scalar, b (M,), c (M,), D (M, M), e (M,)) as core parameters;
// the arrays stay alive in `keep`.
memsgd::AlgorithmParams stationary_params(double alpha, py::object b, py::object c, py::object D,
                                          py::object e, std::vector<Array>& keep, double& alpha_store) {
  Array bb = as_array(b, "b"), cc = as_array(c, "c"), DD = as_array(D, "D"), ee = as_array(e, "e");
  require(bb.ndim() == 1, "b must be a 1-d array (length M)");
  const py::ssize_t M = bb.size();
  require_shape(cc, "c", {M});
  require(DD.size() == M * M && (DD.ndim() == 2 || M == 0), "D must have shape (M, M)");
  require_shape(ee, "e", {M});
  require(std::isfinite(alpha), "alpha must be finite");
  require_finite(bb, "b");
  require_finite(cc, "c");
  require_finite(DD, "D");
  require_finite(ee, "e");
  keep = {bb, cc, DD, ee};
  alpha_store = alpha;
  memsgd::AlgorithmParams params;
  params.memory = static_cast<int>(M);
  params.steps_stored = 1;
  params.alpha = &alpha_store;
  params.b = bb.data();
  params.c = cc.data();
  params.D = DD.data();
  params.e = ee.data();
  return params;
}

Array eigenvalue_array(py::object eigenvalues) {
  Array lam = as_array(eigenvalues, "eigenvalues");
  require(lam.ndim() == 1 && lam.size() > 0, "eigenvalues must be a non-empty 1-d array");
  require_finite(lam, "eigenvalues");
  return lam;
}

// Poles s = log(mu) of the moment maps, (K, P) complex.
ComplexArray moment_poles(py::object eigenvalues, double alpha, py::object b, py::object c, py::object D,
                          py::object e, double self_noise) {
  Array lam = eigenvalue_array(eigenvalues);
  require(std::isfinite(self_noise), "self_noise must be finite");
  std::vector<Array> keep;
  double alpha_store;
  const memsgd::AlgorithmParams params = stationary_params(alpha, b, c, D, e, keep, alpha_store);
  const py::ssize_t P = (params.memory + 1) * (params.memory + 2) / 2;
  ComplexArray out({lam.size(), P});
  {
    py::gil_scoped_release release;
    memsgd::MomentMaps maps(lam.data(), static_cast<std::size_t>(lam.size()), params, self_noise);
    memsgd::moment_poles(maps, out.mutable_data());
  }
  return out;
}

// (nodes, 8) complex: U_S, U'_S, V_S, V'_S, U_F, U'_F, V_F, V'_F at each node s.
ComplexArray generating_sums(py::object eigenvalues, py::object u_weights, py::object v_weights,
                             py::object order, double alpha, py::object b, py::object c, py::object D,
                             py::object e, double self_noise, py::object s, py::object n_slow,
                             memsgd::RunControl* control) {
  Array lam = eigenvalue_array(eigenvalues);
  const py::ssize_t K = lam.size();
  Array wu = as_array(u_weights, "u_weights"), wv = as_array(v_weights, "v_weights");
  require_shape(wu, "u_weights", {K});
  require_shape(wv, "v_weights", {K});
  require_finite(wu, "u_weights");
  require_finite(wv, "v_weights");
  IndexArray ord = IndexArray::ensure(order);
  require(ord && ord.ndim() == 1 && ord.size() == K, "order must be a permutation of range(len(eigenvalues))");
  {
    std::vector<char> seen(static_cast<std::size_t>(K), 0);
    for (py::ssize_t i = 0; i < K; ++i) {
      const std::int64_t k = ord.data()[i];
      require(k >= 0 && k < K && !seen[static_cast<std::size_t>(k)],
              "order must be a permutation of range(len(eigenvalues))");
      seen[static_cast<std::size_t>(k)] = 1;
    }
  }
  ComplexArray nodes = ComplexArray::ensure(s);
  require(nodes && nodes.ndim() == 1, "s must be a 1-d array of complex nodes");
  const py::ssize_t n = nodes.size();
  for (py::ssize_t j = 0; j < n; ++j)
    require(std::isfinite(nodes.data()[j].real()) && std::isfinite(nodes.data()[j].imag()), "s must be finite");
  IndexArray split = IndexArray::ensure(n_slow);
  require(split && split.ndim() == 1 && split.size() == n, "n_slow must have one entry per node");
  require(std::isfinite(self_noise), "self_noise must be finite");
  std::vector<Array> keep;
  double alpha_store;
  const memsgd::AlgorithmParams params = stationary_params(alpha, b, c, D, e, keep, alpha_store);
  ComplexArray out({n, py::ssize_t(8)});
  bool done;
  {
    py::gil_scoped_release release;
    memsgd::MomentMaps maps(lam.data(), static_cast<std::size_t>(K), params, self_noise);
    done = memsgd::generating_sums(maps, wu.data(), wv.data(), ord.data(), static_cast<std::size_t>(n),
                                   nodes.data(), split.data(), out.mutable_data(), control);
  }
  if (!done) throw std::runtime_error("run cancelled");
  return out;
}

}  // namespace

static void bind_long(py::module_& m) {
  m.def("solve_renewal", &solve_renewal, py::arg("U"), py::arg("U_prime"), py::arg("V"),
        py::arg("V_prime"), py::arg("method") = "fft", py::arg("control") = nullptr,
        py::arg("with_error") = false,
        "Solve the renewal equations; returns (L, l, error) with error the estimated absolute "
        "error of L (None unless with_error). control: RunControl (progress over 1-6 passes of "
        "n outputs, cancellation).");
  m.def("moment_poles", &moment_poles, py::arg("eigenvalues"), py::arg("alpha"), py::arg("b"),
        py::arg("c"), py::arg("D"), py::arg("e"), py::arg("self_noise"),
        "Poles s = log(mu) of the generating functions: eigenvalues mu of every moment map T_k, "
        "shape (K, P), the slow one refined to relative accuracy.");
  m.def("generating_sums", &generating_sums, py::arg("eigenvalues"), py::arg("u_weights"),
        py::arg("v_weights"), py::arg("order"), py::arg("alpha"), py::arg("b"), py::arg("c"),
        py::arg("D"), py::arg("e"), py::arg("self_noise"), py::arg("s"), py::arg("n_slow"),
        py::arg("control") = nullptr,
        "Generating functions U, U', V, V' at complex nodes s = -log z, summed over the first "
        "n_slow components of order and over the rest: shape (nodes, 8).");
}
// ======================== end of the block owned by `long` ==================================

PYBIND11_MODULE(_core, m) {
  m.doc() = "memsgd compiled core: exact second-moment recursion and renewal solvers";
  py::class_<memsgd::RunControl>(m, "RunControl",
                                 "Progress of a running evolve() and a way to stop it from another thread.")
      .def(py::init<>())
      .def_property_readonly("steps_done", [](const memsgd::RunControl& c) { return c.steps_done.load(); })
      .def("cancel", [](memsgd::RunControl& c) { c.cancel.store(true); });
  m.def("evolve", &evolve, py::arg("eigenvalues"), py::arg("weights"), py::arg("scales"),
        py::arg("alpha"), py::arg("b"), py::arg("c"), py::arg("D"), py::arg("e"), py::arg("steps"),
        py::arg("coupling"), py::arg("self_noise"), py::arg("initial_ggt") = false,
        py::arg("limit") = 2e30, py::arg("control") = nullptr,
        "Second-moment recursion; returns (r0, r1, diverged_at) with r0_t = sum w lam X00, "
        "r1_t = sum w lam h^T X h; diverged_at = -1 when finite throughout.");
  m.def("renewal", &renewal, py::arg("U"), py::arg("U_prime"), py::arg("V"), py::arg("V_prime"),
        py::arg("method") = "fft", "Solve the renewal equations; returns (L, l).");
  m.def("max_threads", &memsgd::max_threads, "Threads the core uses (OpenMP), 1 without OpenMP.");
  bind_long(m);
}
