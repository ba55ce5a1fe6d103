// The only file that knows about Python: converts arrays, checks shapes, releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "memsgd/adjoint.hpp"
#include "memsgd/evolve.hpp"
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


// ===================================== adjoint (schedule design) =====================================
// Gradient of sum_t w_t L_t w.r.t. every per-step parameter; see memsgd/adjoint.hpp.

py::tuple loss_gradient(py::object eigenvalues, py::object weights, py::object scales, py::object alpha,
                        py::object b, py::object c, py::object D, py::object e, py::object coupling,
                        py::object self_noise, py::object loss_weights, std::int64_t steps,
                        std::int64_t checkpoint_every, double limit, bool general_kernel,
                        memsgd::RunControl* control) {
  Array lam = as_array(eigenvalues, "eigenvalues"), w = as_array(weights, "weights"),
        sc = as_array(scales, "scales");
  Array al = as_array(alpha, "alpha"), bb = as_array(b, "b"), cc = as_array(c, "c"),
        DD = as_array(D, "D"), ee = as_array(e, "e");
  Array c1 = as_array(coupling, "coupling"), c2 = as_array(self_noise, "self_noise"),
        lw = as_array(loss_weights, "loss_weights");
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
  require(T == 1 || T >= steps, "steps must be <= the number of parameter rows (steps_stored >= steps)");
  require_shape(c1, "coupling", {static_cast<py::ssize_t>(steps)});
  require_shape(c2, "self_noise", {static_cast<py::ssize_t>(steps)});
  require_shape(lw, "loss_weights", {static_cast<py::ssize_t>(steps + 1)});
  require(checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: about sqrt(steps))");
  require(!std::isnan(limit), "limit must not be NaN (use inf for no divergence check)");
  for (const auto& [arr, name] : {std::pair<const Array*, const char*>{&lam, "eigenvalues"}, {&w, "weights"},
                                  {&sc, "scales"}, {&al, "alpha"}, {&bb, "b"}, {&cc, "c"}, {&DD, "D"},
                                  {&ee, "e"}, {&c1, "coupling"}, {&c2, "self_noise"},
                                  {&lw, "loss_weights"}})
    require_finite(*arr, name);
  {
    const double work = memsgd::gradient_workspace(static_cast<std::size_t>(K), static_cast<int>(M),
                                                   static_cast<std::size_t>(steps),
                                                   static_cast<std::size_t>(checkpoint_every));
    const double rows = static_cast<double>(steps) * (4.0 + 3.0 * M + static_cast<double>(M) * M);
    require_fits(8.0 * (work + rows + 2.0 * (static_cast<double>(steps) + 1.0)), "steps");
  }

  memsgd::Nodes nodes{static_cast<std::size_t>(K), lam.data(), w.data(), sc.data()};
  memsgd::AlgorithmParams params;
  params.memory = static_cast<int>(M);
  params.steps_stored = static_cast<std::size_t>(T);
  params.alpha = al.data();
  params.b = bb.data();
  params.c = cc.data();
  params.D = DD.data();
  params.e = ee.data();
  memsgd::NoiseSchedule noise{c1.data(), c2.data()};
  memsgd::GradientOptions options;
  options.checkpoint_every = static_cast<std::size_t>(checkpoint_every);
  options.limit = std::min(limit, std::numeric_limits<double>::max());
  options.control = control;
  options.general_kernel = general_kernel;

  const py::ssize_t n = static_cast<py::ssize_t>(steps);
  Array loss(n + 1), g_alpha(n), g_b(std::vector<py::ssize_t>{n, M}), g_c(std::vector<py::ssize_t>{n, M}),
      g_D(std::vector<py::ssize_t>{n, M, M}), g_e(std::vector<py::ssize_t>{n, M}), g_c1(n), g_c2(n);
  memsgd::GradientOutputs out;
  out.loss = loss.mutable_data();
  out.alpha = g_alpha.mutable_data();
  out.b = g_b.mutable_data();
  out.c = g_c.mutable_data();
  out.D = g_D.mutable_data();
  out.e = g_e.mutable_data();
  out.coupling = g_c1.mutable_data();
  out.self_noise = g_c2.mutable_data();
  memsgd::GradientResult res;
  {
    py::gil_scoped_release release;
    res = memsgd::loss_gradient(nodes, params, noise, lw.data(), static_cast<std::size_t>(steps), options, out);
  }
  if (control != nullptr && control->cancel.load()) throw std::runtime_error("run cancelled");
  double* L = loss.mutable_data();
  for (std::int64_t t = 0; t <= steps; ++t)
    if (std::isnan(L[t])) L[t] = std::numeric_limits<double>::infinity();
  return py::make_tuple(res.value, res.diverged_at, loss, g_alpha, g_b, g_c, g_D, g_e, g_c1, g_c2,
                        res.checkpoint_every, res.stored_states);
}
// ================================== end adjoint (schedule design) ==================================

}  // namespace

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
  // ---- adjoint (schedule design) ----
  m.def("loss_gradient", &loss_gradient, py::arg("eigenvalues"), py::arg("weights"), py::arg("scales"),
        py::arg("alpha"), py::arg("b"), py::arg("c"), py::arg("D"), py::arg("e"), py::arg("coupling"),
        py::arg("self_noise"), py::arg("loss_weights"), py::arg("steps"), py::arg("checkpoint_every") = 0,
        py::arg("limit") = 2e30, py::arg("general_kernel") = false, py::arg("control") = nullptr,
        "Gradient of sum_t loss_weights[t] L_t; returns (value, diverged_at, loss, d_alpha, d_b, d_c, d_D, "
        "d_e, d_coupling, d_self_noise, checkpoint_every, stored_states).");
  m.def("max_threads", &memsgd::max_threads, "Threads the core uses (OpenMP), 1 without OpenMP.");
}
