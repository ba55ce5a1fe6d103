// The only file that knows about Python (pocketfft style): convert arrays, check shapes, release
// the GIL, call the core. No numerical policy here: divergence, limits and the meaning of the
// outputs are the core's (cpp/include/memsgd/*.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <algorithm>
#include <complex>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memsgd/adjoint.hpp"
#include "memsgd/build_info.hpp"
#include "memsgd/elementwise.hpp"
#include "memsgd/evolve.hpp"
#include "memsgd/long_horizon.hpp"
#include "memsgd/renewal.hpp"
#include "memsgd/simd.hpp"

namespace py = pybind11;

namespace {

// -- conversion helpers ---------------------------------------------------------------------------

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error(message);
}

py::array raw_array(const py::handle& obj, const std::string& name, const char* kinds, const char* what) {
  if (obj.is_none()) throw py::type_error(name + " must be " + what + ", not None");
  // Look at the input's own dtype first: forcecast would silently drop imaginary parts,
  // parse strings and unwrap object arrays.
  py::array raw = py::array::ensure(obj);
  if (!raw) throw py::type_error(name + " must be convertible to " + what);
  const char kind = raw.dtype().kind();
  if (std::string(kinds).find(kind) == std::string::npos)
    throw py::type_error(name + " must be " + what + ", got dtype kind '" + std::string(1, kind) + "'");
  return raw;
}

Array as_array(const py::handle& obj, const std::string& name) {
  Array a = Array::ensure(raw_array(obj, name, "fiub", "an array of real numbers (bool, integer or float dtype)"));
  if (!a) throw py::type_error(name + " must be convertible to a float64 array");
  return a;
}

void require_shape(const Array& a, const std::string& name, std::initializer_list<py::ssize_t> shape) {
  std::string want = "(";
  for (auto s : shape) want += std::to_string(s) + ",";
  want += ")";
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  if (ok) {
    int i = 0;
    for (auto s : shape) ok = ok && a.shape(i++) == s;
  }
  require(ok, name + " must have shape " + want);
}

void require_finite(const Array& a, const std::string& name) {
  const double* p = a.data();
  const py::ssize_t n = a.size();
  for (py::ssize_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) throw py::value_error(name + " must be finite");
}

// Arrays of one configuration, converted once per distinct Python object (a shared spectrum is
// converted and checked once for the whole batch).
class Converter {
 public:
  const Array& get(const py::handle& obj, const std::string& name) {
    auto it = cache_.find(obj.ptr());
    if (it != cache_.end()) return it->second;
    Array a = as_array(obj, name);
    require_finite(a, name);
    keep_.push_back(py::reinterpret_borrow<py::object>(obj));
    return cache_.emplace(obj.ptr(), std::move(a)).first->second;
  }

 private:
  std::unordered_map<PyObject*, Array> cache_;
  std::vector<py::object> keep_;  // the keys stay alive (and unique) while cached
};

// (eigenvalues, weights, scales[, decay_scale or None]) -> Nodes
memsgd::Nodes nodes_from(Converter& conv, const py::handle& spectrum, const std::string& where) {
  auto t = py::reinterpret_borrow<py::tuple>(spectrum);
  require(t.size() == 3 || t.size() == 4,
          "spectrum" + where + " must be (eigenvalues, weights, scales) or (eigenvalues, weights, scales, decay_scale)");
  const Array& lam = conv.get(t[0], "eigenvalues" + where);
  require(lam.ndim() == 1 && lam.size() > 0, "eigenvalues" + where + " must be a non-empty 1-d array");
  const py::ssize_t K = lam.size();
  const Array& w = conv.get(t[1], "weights" + where);
  const Array& sc = conv.get(t[2], "scales" + where);
  require_shape(w, "weights" + where, {K});
  require_shape(sc, "scales" + where, {K});
  memsgd::Nodes n{static_cast<std::size_t>(K), lam.data(), w.data(), sc.data()};
  if (t.size() == 4 && !t[3].is_none()) {
    const Array& ds = conv.get(t[3], "decay_scale" + where);
    require_shape(ds, "decay_scale" + where, {K});
    n.decay_scale = ds.data();
  }
  return n;
}

// (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)) -> AlgorithmParams
memsgd::AlgorithmParams algorithm_from(Converter& conv, const py::handle& algorithm, const std::string& where) {
  auto t = py::reinterpret_borrow<py::tuple>(algorithm);
  require(t.size() == 5, "algorithm" + where + " must be (alpha, b, c, D, e)");
  const Array& al = conv.get(t[0], "alpha" + where);
  require(al.ndim() == 1 && al.size() > 0, "alpha" + where + " must be a non-empty 1-d array (one entry per step)");
  const py::ssize_t T = al.size();
  const Array& bb = conv.get(t[1], "b" + where);
  require(bb.ndim() == 2 && bb.shape(0) == T, "b" + where + " must have shape (rows of alpha, M)");
  const py::ssize_t M = bb.shape(1);
  const Array& cc = conv.get(t[2], "c" + where);
  const Array& DD = conv.get(t[3], "D" + where);
  const Array& ee = conv.get(t[4], "e" + where);
  require_shape(cc, "c" + where, {T, M});
  require_shape(DD, "D" + where, {T, M, M});
  require_shape(ee, "e" + where, {T, M});
  memsgd::AlgorithmParams p;
  p.memory = static_cast<int>(M);
  p.steps_stored = static_cast<std::size_t>(T);
  p.alpha = al.data();
  p.b = bb.data();
  p.c = cc.data();
  p.D = DD.data();
  p.e = ee.data();
  return p;
}

// The optional per-step weight decay rho_t (rows of alpha; None: none) into `p`.
void weight_decay_from(Converter& conv, const py::handle& rho, memsgd::AlgorithmParams& p, const std::string& where) {
  if (rho.is_none()) return;
  const Array& wd = conv.get(rho, "weight_decay" + where);
  require_shape(wd, "weight_decay" + where, {static_cast<py::ssize_t>(p.steps_stored)});
  p.weight_decay = wd.data();
}

// (coupling (n,), self_noise (n,)[, label (n,) or None]) -> NoiseParams; label = sigma2/B_t, the
// label-noise source (None: none).
memsgd::NoiseParams noise_from(Converter& conv, const py::handle& noise, const std::string& where) {
  auto t = py::reinterpret_borrow<py::tuple>(noise);
  require(t.size() == 2 || t.size() == 3, "noise" + where + " must be (coupling, self_noise) or (coupling, self_noise, label)");
  const Array& cp = conv.get(t[0], "coupling" + where);
  const Array& sn = conv.get(t[1], "self_noise" + where);
  require(cp.ndim() == 1 && cp.size() > 0, "coupling" + where + " must be a non-empty 1-d array");
  require_shape(sn, "self_noise" + where, {cp.size()});
  memsgd::NoiseParams n{static_cast<std::size_t>(cp.size()), cp.data(), sn.data()};
  if (t.size() == 3 && !t[2].is_none()) {
    const Array& lb = conv.get(t[2], "label" + where);
    require_shape(lb, "label" + where, {cp.size()});
    n.label = lb.data();
  }
  return n;
}

std::size_t steps_from(std::int64_t steps) {
  require(steps >= 0, "steps must be >= 0");
  require(steps < memsgd::kMaxSteps, "steps must be < 2**40");
  return static_cast<std::size_t>(steps);
}

// One rule for every entry point's thread count; the core caps it at thread_limit().
void require_threads(int threads) { require(threads >= 0, "threads must be >= 0 (0: the default, all cores)"); }

// None or a RunControl (typed as an object so that stubs say the None is allowed)
memsgd::RunControl* run_control(const py::object& control) {
  if (control.is_none()) return nullptr;
  if (!py::isinstance<memsgd::RunControl>(control)) throw py::type_error("control must be a RunControl or None");
  return control.cast<memsgd::RunControl*>();
}

template <class Tuple>
void require_tuple(const py::handle& obj, const char* name) {
  if (!py::isinstance<Tuple>(obj)) throw py::type_error(std::string(name) + " must be a tuple of arrays");
}

// -- evolve: one configuration, every step ----------------------------------------------------------

py::tuple evolve(py::object eigenvalues, py::object weights, py::object scales, py::object alpha, py::object b,
                 py::object c, py::object D, py::object e, py::object coupling, py::object self_noise,
                 std::int64_t steps, bool initial_ggt, bool overflow_only, int threads, bool adaptive_threads,
                 bool spin_only, std::int64_t alternate_every, py::object control, py::object label,
                 py::object weight_decay, py::object decay_scale) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  require_threads(threads);
  memsgd::Configuration cfg;
  cfg.nodes = nodes_from(conv, py::make_tuple(eigenvalues, weights, scales, decay_scale), "");
  cfg.algorithm = algorithm_from(conv, py::make_tuple(alpha, b, c, D, e), "");
  weight_decay_from(conv, weight_decay, cfg.algorithm, "");
  cfg.noise = noise_from(conv, py::make_tuple(coupling, self_noise, label), "");
  memsgd::require_memory(2.0 * 8.0 * (static_cast<double>(T) + 1.0), cfg.algorithm.memory, cfg.nodes.count, 1, threads,
                         !weight_decay.is_none());
  memsgd::RunOptions opt;
  opt.initial = initial_ggt ? memsgd::InitialState::GGt : memsgd::InitialState::E11;
  opt.rule = overflow_only ? memsgd::DivergenceRule::OverflowOnly : memsgd::DivergenceRule::Relative;
  opt.threads = threads;
  opt.adaptive_threads = adaptive_threads;
  opt.spin_only = spin_only;
  require(alternate_every >= 0, "alternate_every must be >= 0");
  opt.alternate_every = static_cast<std::size_t>(alternate_every);
  opt.control = run_control(control);
  Array loss(static_cast<py::ssize_t>(T + 1)), gp(static_cast<py::ssize_t>(T + 1));
  std::int64_t diverged = -1;
  memsgd::Outputs out{loss.mutable_data(), gp.mutable_data(), &diverged};
  {
    py::gil_scoped_release release;
    memsgd::evolve(&cfg, 1, T, memsgd::Recording{}, opt, out);
  }
  return py::make_tuple(loss, gp, diverged);
}

// -- evolve_batch: C configurations, recorded steps ------------------------------------------------

py::tuple evolve_batch(py::sequence spectra, py::sequence algorithms, py::sequence noises, std::int64_t steps,
                       py::object record, int threads, py::object control) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  require_threads(threads);
  const std::size_t C = static_cast<std::size_t>(py::len(algorithms));
  require(py::len(spectra) == C, "spectra must have one entry per configuration (" + std::to_string(C) + ")");
  require(py::len(noises) == C, "noises must have one entry per configuration (" + std::to_string(C) + ")");
  std::vector<memsgd::Configuration> cfgs(C);
  bool any_decay = false;
  int max_memory = 0;
  std::size_t max_nodes = 0;
  for (std::size_t i = 0; i < C; ++i) {
    const std::string where = " of configuration " + std::to_string(i);
    require_tuple<py::tuple>(spectra[i], "spectra entries");
    require_tuple<py::tuple>(algorithms[i], "algorithms entries");
    require_tuple<py::tuple>(noises[i], "noises entries");
    cfgs[i].nodes = nodes_from(conv, spectra[i], where);
    auto at = py::reinterpret_borrow<py::tuple>(algorithms[i]);
    require(at.size() == 5 || at.size() == 6,
            "algorithm" + where + " must be (alpha, b, c, D, e) or (alpha, b, c, D, e, weight_decay)");
    cfgs[i].algorithm = algorithm_from(conv, at.size() == 5 ? at : py::tuple(at[py::slice(0, 5, 1)]), where);
    if (at.size() == 6) weight_decay_from(conv, at[5], cfgs[i].algorithm, where);
    any_decay = any_decay || cfgs[i].algorithm.weight_decay != nullptr;
    cfgs[i].noise = noise_from(conv, noises[i], where);
    max_memory = std::max(max_memory, cfgs[i].algorithm.memory);
    max_nodes = std::max(max_nodes, cfgs[i].nodes.count);
  }
  IndexArray rec;
  memsgd::Recording recording;
  if (!record.is_none()) {
    py::array raw = raw_array(record, "record", "iu", "an array of integer steps");
    rec = IndexArray::ensure(raw);
    require(rec && rec.ndim() == 1, "record must be a 1-d array of steps");
    recording.steps = rec.data();
    recording.count = static_cast<std::size_t>(rec.size());
  }
  const std::size_t R = recording.steps != nullptr ? recording.count : T + 1;
  memsgd::require_memory(8.0 * static_cast<double>(C) * (static_cast<double>(R) + 1.0), max_memory, max_nodes, C, threads,
                         any_decay);
  memsgd::RunOptions opt;
  opt.threads = threads;
  opt.control = run_control(control);
  Array loss({static_cast<py::ssize_t>(C), static_cast<py::ssize_t>(R)});
  IndexArray diverged(static_cast<py::ssize_t>(C));
  memsgd::Outputs out{loss.mutable_data(), nullptr, diverged.mutable_data()};
  {
    py::gil_scoped_release release;
    memsgd::evolve(cfgs.data(), C, T, recording, opt, out);
  }
  return py::make_tuple(loss, diverged);
}

// -- introspection -------------------------------------------------------------------------------

py::dict build_info() {
  const memsgd::BuildInfo b = memsgd::build_info();
  py::dict d;
  d["version"] = b.version;
  d["compiler"] = b.compiler;
  d["build_type"] = b.build_type;
  d["openmp"] = b.openmp;
  d["openmp_version"] = b.openmp_version;
  d["max_threads"] = b.max_threads;
  d["native"] = b.native;
  d["architecture"] = b.architecture;
  d["simd_compiled"] = b.simd_compiled;
  d["simd_supported"] = b.simd_supported;
  d["simd_active"] = b.simd_active;
  return d;
}


// ===================================== adjoint (schedule design) =====================================
// Gradient of sum_t w_t L_t w.r.t. every per-step parameter; see memsgd/adjoint.hpp.

py::tuple loss_gradient(py::object eigenvalues, py::object weights, py::object scales, py::object alpha,
                        py::object b, py::object c, py::object D, py::object e, py::object coupling,
                        py::object self_noise, py::object loss_weights, std::int64_t steps,
                        std::int64_t checkpoint_every, bool general_kernel, int threads,
                        std::int64_t alternate_every, py::object control, py::object label) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  require_threads(threads);
  require(checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: about sqrt(steps))");
  memsgd::Configuration cfg;
  cfg.nodes = nodes_from(conv, py::make_tuple(eigenvalues, weights, scales), "");
  cfg.algorithm = algorithm_from(conv, py::make_tuple(alpha, b, c, D, e), "");
  cfg.noise = noise_from(conv, py::make_tuple(coupling, self_noise, label), "");
  const Array& lw = conv.get(loss_weights, "loss_weights");
  require_shape(lw, "loss_weights", {static_cast<py::ssize_t>(T + 1)});
  memsgd::GradientOptions options;
  options.checkpoint_every = static_cast<std::size_t>(checkpoint_every);
  options.threads = threads;
  options.general_kernel = general_kernel;
  require(alternate_every >= 0, "alternate_every must be >= 0");
  options.alternate_every = static_cast<std::size_t>(alternate_every);
  options.control = run_control(control);
  memsgd::require_gradient_memory(cfg, lw.data(), T, options);

  const py::ssize_t n = static_cast<py::ssize_t>(T), M = cfg.algorithm.memory;
  Array loss(n + 1), g_alpha(n), g_b(std::vector<py::ssize_t>{n, M}), g_c(std::vector<py::ssize_t>{n, M}),
      g_D(std::vector<py::ssize_t>{n, M, M}), g_e(std::vector<py::ssize_t>{n, M}), g_c1(n), g_c2(n), g_label(n);
  memsgd::GradientOutputs out;
  out.loss = loss.mutable_data();
  out.alpha = g_alpha.mutable_data();
  out.b = g_b.mutable_data();
  out.c = g_c.mutable_data();
  out.D = g_D.mutable_data();
  out.e = g_e.mutable_data();
  out.coupling = g_c1.mutable_data();
  out.self_noise = g_c2.mutable_data();
  out.label = g_label.mutable_data();
  memsgd::GradientResult res;
  {
    py::gil_scoped_release release;
    res = memsgd::loss_gradient(cfg, lw.data(), T, options, out);
  }
  return py::make_tuple(res.value, res.diverged_at, loss, g_alpha, g_b, g_c, g_D, g_e, g_c1, g_c2,
                        res.checkpoint_every, res.stored_states, g_label);
}
// ================================== end adjoint (schedule design) ==================================

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
  if (!done) throw memsgd::Cancelled{};
  return py::make_tuple(L, l, with_error ? py::object(error) : py::object(py::none()));
}

using ComplexArray = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>;

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

// Poles s = log(mu) of the moment maps, (K, P) complex; the slow real eigenvalue delta of each
// (K,) and its rounding uncertainty (K,).
py::tuple moment_poles(py::object eigenvalues, double alpha, py::object b, py::object c, py::object D,
                       py::object e, double self_noise, double shift, bool first_moments) {
  Array lam = eigenvalue_array(eigenvalues);
  require(std::isfinite(self_noise), "self_noise must be finite");
  require(std::isfinite(shift), "shift must be finite");
  std::vector<Array> keep;
  double alpha_store;
  const memsgd::AlgorithmParams params = stationary_params(alpha, b, c, D, e, keep, alpha_store);
  const py::ssize_t P = first_moments ? params.memory + 1 : (params.memory + 1) * (params.memory + 2) / 2;
  ComplexArray out({lam.size(), P});
  Array slow({lam.size()}), slow_error({lam.size()});
  {
    py::gil_scoped_release release;
    memsgd::MomentMaps maps(lam.data(), static_cast<std::size_t>(lam.size()), params, self_noise, shift);
    if (first_moments)
      memsgd::first_moment_poles(maps, out.mutable_data(), slow.mutable_data(), slow_error.mutable_data());
    else
      memsgd::moment_poles(maps, out.mutable_data(), slow.mutable_data(), slow_error.mutable_data());
  }
  return py::make_tuple(out, slow, slow_error);
}

// (Y (K, P), mu (K, N)): the stationary moments per unit drive and per unit w* (see the core).
py::tuple stationary_moments(py::object eigenvalues, double alpha, py::object b, py::object c, py::object D,
                             py::object e, double self_noise, double shift) {
  Array lam = eigenvalue_array(eigenvalues);
  require(std::isfinite(self_noise), "self_noise must be finite");
  require(std::isfinite(shift), "shift must be finite");
  std::vector<Array> keep;
  double alpha_store;
  const memsgd::AlgorithmParams params = stationary_params(alpha, b, c, D, e, keep, alpha_store);
  const py::ssize_t N = params.memory + 1, P = N * (N + 1) / 2;
  Array Y({lam.size(), P}), mu({lam.size(), N});
  {
    py::gil_scoped_release release;
    memsgd::MomentMaps maps(lam.data(), static_cast<std::size_t>(lam.size()), params, self_noise, shift);
    memsgd::stationary_moments(maps, Y.mutable_data(), mu.mutable_data());
  }
  return py::make_tuple(Y, mu);
}

// An optional per-component input of generating_sums: None, or a finite array of the given shape.
const double* optional_rows(py::object obj, const std::string& name, std::vector<Array>& keep,
                            std::initializer_list<py::ssize_t> shape) {
  if (obj.is_none()) return nullptr;
  keep.push_back(as_array(obj, name));
  require_shape(keep.back(), name, shape);
  require_finite(keep.back(), name);
  return keep.back().data();
}

// (nodes, 8) complex: U_S, U'_S, V_S, V'_S, U_F, U'_F, V_F, V'_F at each node s.
ComplexArray generating_sums(py::object eigenvalues, py::object u_weights, py::object v_weights,
                             py::object order, double alpha, py::object b, py::object c, py::object D,
                             py::object e, double self_noise, py::object s, py::object n_slow,
                             py::object slow_delta, py::object slow_error, memsgd::RunControl* control,
                             int threads, double shift, py::object second, py::object first,
                             py::object second_source, py::object first_source, py::object first_slow_delta,
                             py::object first_slow_error) {
  Array lam = eigenvalue_array(eigenvalues);
  const py::ssize_t K = lam.size();
  require_threads(threads);
  Array wu = as_array(u_weights, "u_weights"), wv = as_array(v_weights, "v_weights");
  require_shape(wu, "u_weights", {K});
  require_shape(wv, "v_weights", {K});
  require_finite(wu, "u_weights");
  require_finite(wv, "v_weights");
  IndexArray ord = IndexArray::ensure(order);
  require(ord && ord.ndim() == 1 && ord.size() == K, "order must be a permutation of range(len(eigenvalues))");
  ComplexArray nodes = ComplexArray::ensure(s);
  require(nodes && nodes.ndim() == 1, "s must be a 1-d array of complex nodes");
  const py::ssize_t n = nodes.size();
  IndexArray split = IndexArray::ensure(n_slow);
  require(split && split.ndim() == 1 && split.size() == n, "n_slow must have one entry per node");
  require(std::isfinite(self_noise), "self_noise must be finite");
  std::vector<Array> keep;
  double alpha_store;
  const memsgd::AlgorithmParams params = stationary_params(alpha, b, c, D, e, keep, alpha_store);
  Array slow, slow_err;
  require(slow_delta.is_none() == slow_error.is_none(), "slow_delta and slow_error go together");
  const bool with_poles = !slow_delta.is_none();
  if (with_poles) {
    slow = as_array(slow_delta, "slow_delta");
    slow_err = as_array(slow_error, "slow_error");
    require_shape(slow, "slow_delta", {K});
    require_shape(slow_err, "slow_error", {K});
  }
  require(std::isfinite(shift), "shift must be finite");
  const py::ssize_t N = params.memory + 1, P = N * (N + 1) / 2;
  std::vector<Array> rows;
  memsgd::AffineInput affine;
  affine.second = optional_rows(second, "second", rows, {K, P});
  affine.first = optional_rows(first, "first", rows, {K, N});
  affine.second_source = optional_rows(second_source, "second_source", rows, {K});
  affine.first_source = optional_rows(first_source, "first_source", rows, {K});
  require(first_slow_delta.is_none() == first_slow_error.is_none(), "first_slow_delta and first_slow_error go together");
  if (!first_slow_delta.is_none()) {
    rows.push_back(as_array(first_slow_delta, "first_slow_delta"));
    require_shape(rows.back(), "first_slow_delta", {K});
    affine.first_slow_delta = rows.back().data();
    affine.first_slow_error = optional_rows(first_slow_error, "first_slow_error", rows, {K});
  }
  ComplexArray out({n, py::ssize_t(12)});
  bool done;
  {
    py::gil_scoped_release release;
    memsgd::MomentMaps maps(lam.data(), static_cast<std::size_t>(K), params, self_noise, shift);
    done = memsgd::generating_sums(maps, wu.data(), wv.data(), ord.data(), static_cast<std::size_t>(n),
                                   nodes.data(), split.data(), with_poles ? slow.data() : nullptr,
                                   with_poles ? slow_err.data() : nullptr, out.mutable_data(), control, threads,
                                   affine);
  }
  if (!done) throw memsgd::Cancelled{};
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
        py::arg("c"), py::arg("D"), py::arg("e"), py::arg("self_noise"), py::arg("shift") = 0.0,
        py::arg("first_moments") = false,
        "Poles s = log(mu) of the generating functions: eigenvalues mu of every moment map T_k, "
        "shape (K, P), the slow one refined to relative accuracy; returns (poles, slow_delta (K,), "
        "slow_error (K,)): the real eigenvalue delta = mu - 1 closest to 0 (NaN if none) and how far "
        "a double-precision solve may move it. shift: weight decay rho (S_k at lambda_k + rho); "
        "first_moments=True: the same for the first-moment maps S_k, shape (K, M+1).");
  m.def("stationary_moments", &stationary_moments, py::arg("eigenvalues"), py::arg("alpha"), py::arg("b"),
        py::arg("c"), py::arg("D"), py::arg("e"), py::arg("self_noise"), py::arg("shift") = 0.0,
        "(Y (K, P), mu (K, M+1)): Y_k = (I - T_k)^-1 g g^T packed (x_ij, i <= j) and "
        "mu_k = (I - S_k)^-1 (-shift g), the fixed-point pieces at z = 1.");
  m.def("generating_sums", &generating_sums, py::arg("eigenvalues"), py::arg("u_weights"),
        py::arg("v_weights"), py::arg("order"), py::arg("alpha"), py::arg("b"), py::arg("c"),
        py::arg("D"), py::arg("e"), py::arg("self_noise"), py::arg("s"), py::arg("n_slow"),
        py::arg("slow_delta") = py::none(), py::arg("slow_error") = py::none(),
        py::arg("control") = nullptr, py::arg("threads") = 0, py::arg("shift") = 0.0,
        py::arg("second") = py::none(), py::arg("first") = py::none(), py::arg("second_source") = py::none(),
        py::arg("first_source") = py::none(), py::arg("first_slow_delta") = py::none(),
        py::arg("first_slow_error") = py::none(),
        "Generating functions U, U', V, V' at complex nodes s = -log z, summed over the first "
        "n_slow components of order and over the rest: shape (nodes, 12), columns 8-11 (real) "
        "the errors of (U_S, U'_S), (V_S, V'_S), (U_F, U'_F), (V_F, V'_F) from the slow poles' "
        "uncertainty (slow_delta, slow_error from moment_poles; 0 without them). threads = 0: the "
        "default. The affine model: shift = weight decay rho; second (K, P) initial second moments "
        "replacing E11, first (K, M+1) initial first moments (times w*), second_source (K,) and "
        "first_source (K,) constant sources along g g^T and g; first_slow_delta/error from "
        "moment_poles(first_moments=True).");
}
// ======================== end of the block owned by `long` ==================================

PYBIND11_MODULE(_core, m) {
  m.doc() = "memsgd compiled core: exact second-moment recursion and renewal solvers";
  memsgd::select_simd_path_from_environment();  // MEMSGD_SIMD; a refused path fails the import

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const memsgd::Cancelled& c) {
      PyErr_SetString(PyExc_RuntimeError, c.what());
    }
  });

  m.attr("DIVERGENCE_FACTOR") = memsgd::kDivergenceFactor;
  m.attr("MAX_STEPS") = memsgd::kMaxSteps;

  py::class_<memsgd::RunControl>(m, "RunControl", py::module_local(),
                                 "Progress of a running evolve()/evolve_batch() and a way to stop it from another thread.")
      .def(py::init<>())
      .def_property_readonly("steps_done", [](const memsgd::RunControl& c) { return c.steps_done.load(); })
      .def_property_readonly("configs_done", [](const memsgd::RunControl& c) { return c.configs_done.load(); })
      .def_property_readonly("largest_team", [](const memsgd::RunControl& c) { return c.largest_team.load(); },
                             "The most threads that worked together (the thread policy's choice; 1: alone).")
      .def_property_readonly("team_steps", [](const memsgd::RunControl& c) { return c.team_steps.load(); },
                             "Lockstep steps run by a team of two or more threads.")
      .def_property_readonly("team_tries", [](const memsgd::RunControl& c) { return c.team_tries.load(); },
                             "Lockstep teams opened (after the lone thread measured that one could pay).")
      .def_property_readonly("team_drops", [](const memsgd::RunControl& c) { return c.team_drops.load(); },
                             "Lockstep teams given up for one thread (measured no faster than it).")
      .def("cancel", [](memsgd::RunControl& c) { c.cancel.store(true); });

  // engine
  m.def("evolve", &evolve, py::arg("eigenvalues"), py::arg("weights"), py::arg("scales"), py::arg("alpha"),
        py::arg("b"), py::arg("c"), py::arg("D"), py::arg("e"), py::arg("coupling"), py::arg("self_noise"),
        py::arg("steps"), py::kw_only(), py::arg("initial_ggt") = false, py::arg("overflow_only") = false,
        py::arg("threads") = 0, py::arg("adaptive_threads") = true, py::arg("spin_only") = false,
        py::arg("alternate_every") = 0, py::arg("control") = py::none(), py::arg("label") = py::none(),
        py::arg("weight_decay") = py::none(), py::arg("decay_scale") = py::none(),
        "One configuration, every step: returns (loss, gradient_point_loss, diverged_at), each output "
        "(steps+1,), diverged_at = -1 when the run never diverged. coupling/self_noise (and label = "
        "sigma2/B_t, the label-noise source, or None): (1,) or >= steps per-step entries. weight_decay: "
        "None or rho_t >= 0 per row of alpha (the affine state of weight decay); decay_scale: None or kappa_k > 0 "
        "per eigenvalue (component k decays by kappa_k rho_t). threads = 0: the default. adaptive_threads=False: "
        "a team of `threads` from the first step; alternate_every = n > 0 (tests): such a team that hands over "
        "to one thread every n steps and back after n.");
  m.def("evolve_batch", &evolve_batch, py::arg("spectra"), py::arg("algorithms"), py::arg("noises"),
        py::arg("steps"), py::arg("record") = py::none(), py::kw_only(), py::arg("threads") = 0,
        py::arg("control") = py::none(),
        "C configurations: spectra[i] = (eigenvalues, weights, scales[, decay_scale]), algorithms[i] = (alpha, b, c, D, e) "
        "or (alpha, b, c, D, e, weight_decay (rows of alpha) or None), "
        "noises[i] = (coupling, self_noise) or (coupling, self_noise, label). Returns (loss (C, R), diverged_at (C,)) at the recorded steps "
        "(record: increasing int64 steps in [0, steps], or None for every step).");
  m.def("step_cost", &memsgd::step_cost, py::arg("memory"), "Multiply-adds per component and step.");
  m.def("state_bytes", &memsgd::state_bytes, py::arg("memory"), py::arg("nodes"), py::arg("configs"),
        py::arg("threads"), py::arg("weight_decay") = false,
        "Bytes of state the core allocates for a run (outputs not included); weight_decay: the affine state.");
  m.def("physical_memory", &memsgd::physical_memory_bytes, "Physical memory in bytes (0 if unknown).");
  m.def("max_threads", &memsgd::max_threads,
        "Threads the core uses by default (OpenMP, at most thread_limit()), 1 without OpenMP.");
  m.def(
      "planned_threads",
      [](const std::string& work, int memory, std::int64_t nodes, std::int64_t steps, std::int64_t configs,
         int threads) {
        require(work == "curves" || work == "contour", "work must be 'curves' or 'contour', got '" + work + "'");
        require(memory >= 0 && nodes >= 0 && steps >= 0 && configs >= 1,
                "memory, nodes and steps must be >= 0 and configs >= 1");
        require_threads(threads);
        return memsgd::planned_threads(
            work == "curves" ? memsgd::ParallelWork::Curves : memsgd::ParallelWork::ContourSums, memory,
            static_cast<std::size_t>(nodes), static_cast<std::size_t>(steps), static_cast<std::size_t>(configs),
            threads);
      },
      py::arg("work"), py::arg("memory"), py::arg("nodes"), py::arg("steps"), py::kw_only(), py::arg("configs") = 1,
      py::arg("threads") = 0,
      "The most threads the thread policy lets a run use before it measures anything (1: it stays on one "
      "thread). work='curves': `configs` curves of `memory` on `nodes` components for `steps` steps "
      "(loss_curve, loss_curves; loss_gradient's passes plan as one curve); work='contour': loss_at's "
      "contour sums over `steps` contour nodes. threads = 0: the default.");
  m.def("set_always_team", &memsgd::set_always_team, py::arg("on"),
        "Tests: on=True makes every run that may use two or more threads use them from its first step (lockstep "
        "runs never give their team up; independent tasks run one per thread), whatever the thread policy's "
        "model and measurements say; process-wide. on=False restores the policy.");
  m.def(
      "thread_policy_state",
      [] {
        const memsgd::ThreadPolicyState s = memsgd::thread_policy_state();
        py::dict d;
        d["seen_seconds"] = s.seen_seconds;
        d["on_cpu"] = s.on_cpu;
        d["cores_look_idle"] = s.cores_look_idle;
        d["cores_look_busy"] = s.cores_look_busy;
        d["backoff_seconds"] = s.backoff_seconds;
        return d;
      },
      "What the thread policy has measured in this process: seen_seconds (lone-thread time seen lately, "
      "decaying over ~0.1 s) and on_cpu (its CPU time / wall time), cores_look_idle (runs with a barrier per "
      "step may try a team), cores_look_busy (independent tasks stay on one thread), backoff_seconds (until "
      "a team may be tried again after one failed).");
  m.def("thread_limit", &memsgd::thread_limit,
        "The most threads a run uses (4 per processor; larger requests are capped), 1 without OpenMP.");
  m.def("gradient_bytes", &memsgd::gradient_bytes, py::arg("memory"), py::arg("nodes"), py::arg("steps"),
        py::arg("horizon"), py::arg("checkpoint_every"), py::arg("threads"),
        "Bytes a loss_gradient run allocates: outputs, stored states and the engine's state.");
  m.def(
      "gradient_checkpointing",
      [](int memory, std::size_t nodes, std::size_t horizon, std::size_t checkpoint_every) {
        const memsgd::CheckpointPlan p = memsgd::gradient_checkpointing(memory, nodes, horizon, checkpoint_every);
        return py::make_tuple(p.every, p.streamed, p.cache_budget);
      },
      py::arg("memory"), py::arg("nodes"), py::arg("horizon"), py::arg("checkpoint_every") = 0,
      "loss_gradient's checkpointing: (segment length, recomputed states bypass the cache, cache budget in bytes).");

  // introspection
  m.def("build_info", &build_info, "Version, compiler, build type, OpenMP and SIMD paths of this build.");
  m.def("simd_path", &memsgd::simd_path, "The SIMD path the kernels use.");
  m.def("set_simd_path", &memsgd::set_simd_path, py::arg("name"),
        "Use SIMD path `name` (auto, baseline, avx2, avx512) from the next run on.");
  m.def("fma_probe", &memsgd::fma_probe, py::arg("path"), py::arg("iterations"),
        "Peak probe of a SIMD path: iterations rounds of independent 8-lane multiply-adds; returns the "
        "flops done (time the call).");

  bind_long(m);

  // ---- the fused optimizer step of memsgd.torch (python/memsgd/torch/_fused.py) ----
  m.def("elementwise_step", &memsgd::elementwise_step, py::arg("codes"), py::arg("scalars"),
        py::arg("registers"), py::arg("pointers"), py::arg("sizes"), py::arg("is_double"), py::arg("threads"),
        py::call_guard<py::gil_scoped_release>(),
        "Internal (memsgd.torch, fused=True; see memsgd.torch._fused): run an elementwise program over "
        "raw float/double arrays given by address. The caller guarantees the addresses and sizes.");

  // ---- adjoint (schedule design) ----
  m.def("loss_gradient", &loss_gradient, py::arg("eigenvalues"), py::arg("weights"), py::arg("scales"),
        py::arg("alpha"), py::arg("b"), py::arg("c"), py::arg("D"), py::arg("e"), py::arg("coupling"),
        py::arg("self_noise"), py::arg("loss_weights"), py::arg("steps"), py::kw_only(),
        py::arg("checkpoint_every") = 0, py::arg("general_kernel") = false, py::arg("threads") = 0,
        py::arg("alternate_every") = 0, py::arg("control") = py::none(), py::arg("label") = py::none(),
        "Gradient of sum_t loss_weights[t] L_t (forward pass: evolve()'s run; coupling/self_noise and "
        "label (or None): (1,) or >= steps per-step entries); returns (value, diverged_at, loss, d_alpha, "
        "d_b, d_c, d_D, d_e, d_coupling, d_self_noise, checkpoint_every, stored_states, d_label).");
}
