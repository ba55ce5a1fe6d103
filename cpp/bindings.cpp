// The only file that knows about Python (pocketfft's binding is the model): convert the arguments
// once, release the GIL, call the core. No numerical policy here: divergence, limits and the
// meaning of the outputs are the core's (cpp/include/memsgd/*.hpp).
//
// One calling convention for every entry that runs the recursion or its maps:
//
//     entry(spectrum, algorithm, noise, <this entry's inputs>, *, <options>, threads=0, control=None)
//
//   spectrum   (eigenvalues (K,), weights (K,), scales (K,)[, decay_scale (K,)]): the spectrum nodes
//              (memsgd::Nodes); the stationary maps, which depend on the eigenvalues only, take
//              `eigenvalues` (K,).
//   algorithm  (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)[, weight_decay (T,)]): one row
//              per step, or one row for a stationary algorithm (memsgd::AlgorithmParams); the
//              stationary maps take exactly one row and weight decay as their `shift`.
//   noise      (coupling (n,), self_noise (n,)) or (coupling, self_noise, label (n,) or None):
//              tau1/B_t, tau2/B_t and sigma2/B_t, n = 1 (constant) or >= steps (memsgd::NoiseParams).
//   options    keyword-only; `threads` (0: the default) and `control` (a RunControl: progress and
//              cancellation, or None) are keyword-only and last wherever an entry has them.
//
// Every array goes through one converter (Converter): the input's own dtype is checked first
// (forcecast alone would drop imaginary parts, parse strings and unwrap object arrays), then it
// becomes a C-ordered float64 (int64, complex128) array whose shape and finiteness are checked;
// an object passed twice is converted and checked once. Bad input raises TypeError (wrong type)
// or ValueError (wrong value) naming the argument; nothing is left to the core to crash on.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memsgd/adjoint.hpp"
#include "memsgd/build_info.hpp"
#include "memsgd/common.hpp"
#include "memsgd/elementwise.hpp"
#include "memsgd/evolve.hpp"
#include "memsgd/long_horizon.hpp"
#include "memsgd/renewal.hpp"
#include "memsgd/simd.hpp"

namespace py = pybind11;
using memsgd::require;  // std::invalid_argument: ValueError in Python

namespace {

// ===================================== the converter =====================================

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using ComplexArray = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>;

constexpr py::ssize_t kAny = -1;  // an extent a shape does not fix

// An expected shape: extents (kAny: any) and how messages spell it, e.g. {{T, M}, "(T, M)"}.
struct Shape {
  std::vector<py::ssize_t> dims;
  std::string text;
};

class Converter {
 public:
  // `obj` as a C-ordered float64 array of `shape`, finite unless `finite` is false. From bool,
  // integer or float dtypes only (TypeError otherwise).
  const Array& real(const py::handle& obj, const std::string& name, const Shape& shape, bool finite = true) {
    Entry& e = entry(obj, name);
    check_shape(e.array, name, shape);
    if (finite && !e.finite) {
      const double* p = e.array.data();
      const auto n = static_cast<std::size_t>(e.array.size());
      require(memsgd::all_of(p, n, [](double x) { return std::isfinite(x); }), name + " must be finite");
      e.finite = true;
    }
    return e.array;
  }

  // None (nullptr) or real(...).data().
  const double* optional(const py::handle& obj, const std::string& name, const Shape& shape, bool finite = true) {
    return obj.is_none() ? nullptr : real(obj, name, shape, finite).data();
  }

  // `obj` as a C-ordered int64 array of `shape`, from integer dtypes only.
  IndexArray integers(const py::handle& obj, const std::string& name, const Shape& shape) {
    IndexArray a = IndexArray::ensure(checked_dtype(obj, name, "iu", "an array of integers"));
    if (!a) throw py::type_error(name + " must be convertible to an int64 array");
    check_shape(a, name, shape);
    keep(obj);
    return a;
  }

  // `obj` as a C-ordered complex128 array of `shape`, from bool, integer, float or complex dtypes.
  ComplexArray complex(const py::handle& obj, const std::string& name, const Shape& shape) {
    ComplexArray a = ComplexArray::ensure(checked_dtype(obj, name, "fiubc", "an array of complex numbers"));
    if (!a) throw py::type_error(name + " must be convertible to a complex128 array");
    check_shape(a, name, shape);
    keep(obj);
    return a;
  }

 private:
  struct Entry {
    Array array;
    bool finite = false;  // checked finite
  };

  static py::array checked_dtype(const py::handle& obj, const std::string& name, const char* kinds, const char* what) {
    if (obj.is_none()) throw py::type_error(name + " must be " + what + ", not None");
    py::array raw = py::array::ensure(obj);
    if (!raw) throw py::type_error(name + " must be convertible to " + what);
    const char kind = raw.dtype().kind();
    if (std::string(kinds).find(kind) == std::string::npos)
      throw py::type_error(name + " must be " + what + ", got dtype kind '" + std::string(1, kind) + "'");
    return raw;
  }

  static void check_shape(const py::array& a, const std::string& name, const Shape& shape) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.dims.size());
    for (std::size_t i = 0; ok && i < shape.dims.size(); ++i)
      ok = shape.dims[i] == kAny || a.shape(static_cast<py::ssize_t>(i)) == shape.dims[i];
    if (ok) return;
    std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
    throw py::value_error(name + " must have shape " + shape.text + " = " + shape_text(shape.dims) + ", got " +
                          shape_text(got));
  }

  static std::string shape_text(const std::vector<py::ssize_t>& dims) {  // Python's spelling, kAny: "any"
    std::string s = "(";
    for (std::size_t i = 0; i < dims.size(); ++i)
      s += (i ? ", " : "") + (dims[i] == kAny ? std::string("any") : std::to_string(dims[i]));
    return s + (dims.size() == 1 ? ",)" : ")");
  }

  Entry& entry(const py::handle& obj, const std::string& name) {
    auto it = cache_.find(obj.ptr());
    if (it != cache_.end()) return it->second;
    Array a = Array::ensure(checked_dtype(obj, name, "fiub", "an array of real numbers (bool, integer or float dtype)"));
    if (!a) throw py::type_error(name + " must be convertible to a float64 array");
    keep(obj);
    return cache_.emplace(obj.ptr(), Entry{std::move(a)}).first->second;
  }

  void keep(const py::handle& obj) { keep_.push_back(py::reinterpret_borrow<py::object>(obj)); }

  std::unordered_map<PyObject*, Entry> cache_;
  std::vector<py::object> keep_;  // the keys stay alive (and unique) while cached
};

// ================================ the convention's arguments ================================

py::tuple tuple_of(const py::handle& obj, const std::string& name, std::size_t lo, std::size_t hi, const char* form) {
  if (!py::isinstance<py::tuple>(obj)) throw py::type_error(name + " must be a tuple " + form);
  auto t = py::reinterpret_borrow<py::tuple>(obj);
  require(t.size() >= lo && t.size() <= hi, name + " must be " + form);
  return t;
}

// (eigenvalues (K,), weights (K,), scales (K,)[, decay_scale (K,) or None]) -> Nodes
memsgd::Nodes nodes_from(Converter& conv, const py::handle& spectrum, const std::string& where) {
  const py::tuple t = tuple_of(spectrum, "spectrum" + where, 3, 4, "(eigenvalues, weights, scales[, decay_scale])");
  const Array& lam = conv.real(t[0], "eigenvalues" + where, {{kAny}, "(K,)"});
  require(lam.size() > 0, "eigenvalues" + where + " must be a non-empty 1-d array");
  const py::ssize_t K = lam.size();
  const Array& w = conv.real(t[1], "weights" + where, {{K}, "(K,)"});
  const Array& sc = conv.real(t[2], "scales" + where, {{K}, "(K,)"});
  memsgd::Nodes n{static_cast<std::size_t>(K), lam.data(), w.data(), sc.data()};
  if (t.size() == 4) n.decay_scale = conv.optional(t[3], "decay_scale" + where, {{K}, "(K,)"});
  return n;
}

// eigenvalues (K,) of the stationary maps
const Array& eigenvalues_from(Converter& conv, const py::handle& eigenvalues) {
  const Array& lam = conv.real(eigenvalues, "eigenvalues", {{kAny}, "(K,)"});
  require(lam.size() > 0, "eigenvalues must be a non-empty 1-d array");
  return lam;
}

// (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)[, weight_decay (T,) or None]) -> AlgorithmParams;
// `stationary` (the stationary maps, which take weight decay as their shift): T = 1, no weight_decay.
memsgd::AlgorithmParams algorithm_from(Converter& conv, const py::handle& algorithm, const std::string& where,
                                       bool stationary = false) {
  const py::tuple t = stationary ? tuple_of(algorithm, "algorithm" + where, 5, 5, "(alpha, b, c, D, e)")
                                 : tuple_of(algorithm, "algorithm" + where, 5, 6, "(alpha, b, c, D, e[, weight_decay])");
  const Array& al = conv.real(t[0], "alpha" + where, {{kAny}, "(T,)"});
  require(al.size() > 0, "alpha" + where + " must be a non-empty 1-d array (one entry per step)");
  require(!stationary || al.size() == 1, "algorithm" + where + " must be stationary (one row: alpha of shape (1,))");
  const py::ssize_t T = al.size();
  const Array& bb = conv.real(t[1], "b" + where, {{T, kAny}, "(rows of alpha, M)"});
  const py::ssize_t M = bb.shape(1);
  memsgd::AlgorithmParams p;
  p.memory = static_cast<int>(M);
  p.steps_stored = static_cast<std::size_t>(T);
  p.alpha = al.data();
  p.b = bb.data();
  p.c = conv.real(t[2], "c" + where, {{T, M}, "(T, M)"}).data();
  p.D = conv.real(t[3], "D" + where, {{T, M, M}, "(T, M, M)"}).data();
  p.e = conv.real(t[4], "e" + where, {{T, M}, "(T, M)"}).data();
  if (t.size() == 6) p.weight_decay = conv.optional(t[5], "weight_decay" + where, {{T}, "(T,) like alpha"});
  return p;
}

// (coupling (n,), self_noise (n,)[, label (n,) or None]) -> NoiseParams; `stationary`: n = 1.
memsgd::NoiseParams noise_from(Converter& conv, const py::handle& noise, const std::string& where,
                               bool stationary = false) {
  const py::tuple t = tuple_of(noise, "noise" + where, 2, 3, "(coupling, self_noise) or (coupling, self_noise, label)");
  const Array& cp = conv.real(t[0], "coupling" + where, {{kAny}, "(n,)"});
  require(cp.size() > 0, "coupling" + where + " must be a non-empty 1-d array");
  require(!stationary || cp.size() == 1, "noise" + where + " must be stationary (one entry per array)");
  const py::ssize_t n = cp.size();
  memsgd::NoiseParams p{static_cast<std::size_t>(n), cp.data(),
                        conv.real(t[1], "self_noise" + where, {{n}, "(n,) like coupling"}).data()};
  if (t.size() == 3) p.label = conv.optional(t[2], "label" + where, {{n}, "(n,) like coupling"});
  return p;
}

memsgd::Configuration configuration_from(Converter& conv, const py::handle& spectrum, const py::handle& algorithm,
                                         const py::handle& noise, const std::string& where = "") {
  memsgd::Configuration cfg;
  cfg.nodes = nodes_from(conv, spectrum, where);
  cfg.algorithm = algorithm_from(conv, algorithm, where);
  cfg.noise = noise_from(conv, noise, where);
  return cfg;
}

std::size_t steps_from(std::int64_t steps) {
  require(steps >= 0, "steps must be >= 0");
  require(steps < memsgd::kMaxSteps, "steps must be < 2**40");
  return static_cast<std::size_t>(steps);
}

// One rule for every entry's thread count; the core caps it at thread_limit().
int threads_from(int threads) {
  require(threads >= 0, "threads must be >= 0 (0: the default, all cores)");
  return threads;
}

// None or a RunControl (typed as an object so that the stubs say None is allowed).
memsgd::RunControl* control_from(const py::object& control) {
  if (control.is_none()) return nullptr;
  if (!py::isinstance<memsgd::RunControl>(control)) throw py::type_error("control must be a RunControl or None");
  return control.cast<memsgd::RunControl*>();
}

// ======================================== entries ========================================

// The thread policy's test hook (alternate_every = n > 0: a team that hands over to one thread every
// n steps and back after n; 0: the policy decides).
std::size_t alternate_every_from(std::int64_t alternate_every) {
  require(alternate_every >= 0, "alternate_every must be >= 0");
  return static_cast<std::size_t>(alternate_every);
}

py::tuple evolve(const py::object& spectrum, const py::object& algorithm, const py::object& noise,
                 std::int64_t steps, bool initial_ggt, bool overflow_only, bool adaptive_threads,
                 std::int64_t alternate_every, int threads, const py::object& control) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  const memsgd::Configuration cfg = configuration_from(conv, spectrum, algorithm, noise);
  memsgd::RunOptions opt;
  opt.initial = initial_ggt ? memsgd::InitialState::GGt : memsgd::InitialState::E11;
  opt.rule = overflow_only ? memsgd::DivergenceRule::OverflowOnly : memsgd::DivergenceRule::Relative;
  opt.adaptive_threads = adaptive_threads;
  opt.alternate_every = alternate_every_from(alternate_every);
  opt.threads = threads_from(threads);
  opt.control = control_from(control);
  memsgd::require_memory(2.0 * 8.0 * (static_cast<double>(T) + 1.0), cfg.algorithm.memory, cfg.nodes.count, 1,
                         opt.threads, cfg.algorithm.weight_decay != nullptr);
  Array loss(static_cast<py::ssize_t>(T + 1)), gp(static_cast<py::ssize_t>(T + 1));
  std::int64_t diverged = -1;
  const memsgd::Outputs out{loss.mutable_data(), gp.mutable_data(), &diverged};
  {
    py::gil_scoped_release release;
    memsgd::evolve(&cfg, 1, T, memsgd::Recording{}, opt, out);
  }
  return py::make_tuple(loss, gp, diverged);
}

py::tuple evolve_batch(const py::sequence& spectra, const py::sequence& algorithms, const py::sequence& noises,
                       std::int64_t steps, const py::object& record, int threads, const py::object& control) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  const std::size_t C = static_cast<std::size_t>(py::len(algorithms));
  require(py::len(spectra) == C, "spectra must have one entry per configuration (" + std::to_string(C) + ")");
  require(py::len(noises) == C, "noises must have one entry per configuration (" + std::to_string(C) + ")");
  std::vector<memsgd::Configuration> cfgs(C);
  int max_memory = 0;
  std::size_t max_nodes = 0;
  bool any_decay = false;
  for (std::size_t i = 0; i < C; ++i) {
    cfgs[i] = configuration_from(conv, spectra[i], algorithms[i], noises[i], " of configuration " + std::to_string(i));
    max_memory = std::max(max_memory, cfgs[i].algorithm.memory);
    max_nodes = std::max(max_nodes, cfgs[i].nodes.count);
    any_decay = any_decay || cfgs[i].algorithm.weight_decay != nullptr;
  }
  IndexArray rec;
  memsgd::Recording recording;
  if (!record.is_none()) {
    rec = conv.integers(record, "record", {{kAny}, "(R,)"});
    recording.steps = rec.data();
    recording.count = static_cast<std::size_t>(rec.size());
  }
  memsgd::RunOptions opt;
  opt.threads = threads_from(threads);
  opt.control = control_from(control);
  const std::size_t R = recording.steps != nullptr ? recording.count : T + 1;
  memsgd::require_memory(8.0 * static_cast<double>(C) * (static_cast<double>(R) + 1.0), max_memory, max_nodes, C,
                         opt.threads, any_decay);
  Array loss({static_cast<py::ssize_t>(C), static_cast<py::ssize_t>(R)});
  IndexArray diverged(static_cast<py::ssize_t>(C));
  const memsgd::Outputs out{loss.mutable_data(), nullptr, diverged.mutable_data()};
  {
    py::gil_scoped_release release;
    memsgd::evolve(cfgs.data(), C, T, recording, opt, out);
  }
  return py::make_tuple(loss, diverged);
}

py::tuple loss_gradient(const py::object& spectrum, const py::object& algorithm, const py::object& noise,
                        std::int64_t steps, const py::object& loss_weights, std::int64_t checkpoint_every,
                        bool general_kernel, std::int64_t alternate_every, int threads, const py::object& control) {
  Converter conv;
  const std::size_t T = steps_from(steps);
  require(checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: about sqrt(steps))");
  const memsgd::Configuration cfg = configuration_from(conv, spectrum, algorithm, noise);
  const Array& lw = conv.real(loss_weights, "loss_weights", {{static_cast<py::ssize_t>(T + 1)}, "(steps + 1,)"});
  memsgd::GradientOptions options;
  options.checkpoint_every = static_cast<std::size_t>(checkpoint_every);
  options.general_kernel = general_kernel;
  options.alternate_every = alternate_every_from(alternate_every);
  options.threads = threads_from(threads);
  options.control = control_from(control);
  memsgd::require_gradient_memory(cfg, lw.data(), T, options);

  const py::ssize_t n = static_cast<py::ssize_t>(T), M = cfg.algorithm.memory;
  Array loss(n + 1), g_alpha(n), g_b({n, M}), g_c({n, M}), g_D({n, M, M}), g_e({n, M}), g_c1(n), g_c2(n), g_label(n);
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

py::tuple solve_renewal(const py::object& U, const py::object& U_prime, const py::object& V, const py::object& V_prime,
                        const std::string& method, bool with_error, const py::object& control) {
  Converter conv;  // the same array for U and U_prime (V and V_prime) keeps one pointer: convolved once
  const Array& u = conv.real(U, "U", {{kAny}, "(n,)"});
  const py::ssize_t n = u.size();
  const Array& up = conv.real(U_prime, "U_prime", {{n}, "(n,) like U"});
  const Array& v = conv.real(V, "V", {{n}, "(n,) like U"});
  const Array& vp = conv.real(V_prime, "V_prime", {{n}, "(n,) like U"});
  require(method == "direct" || method == "fft", "method must be 'direct' or 'fft'");
  memsgd::RenewalOptions options;
  options.method = method == "fft" ? memsgd::RenewalMethod::Fft : memsgd::RenewalMethod::Direct;
  options.control = control_from(control);
  Array L(n), l(n), error(with_error ? n : 0);
  bool done;
  {
    py::gil_scoped_release release;
    const std::size_t m = static_cast<std::size_t>(n);
    done = memsgd::solve_renewal(m, u.data(), up.data(), v.data(), vp.data(), L.mutable_data(), l.mutable_data(),
                                 options);
    if (done && with_error) {
      options.progress_base = m;
      done = memsgd::renewal_error_bound(m, u.data(), up.data(), v.data(), vp.data(), L.data(), l.data(),
                                         error.mutable_data(), options);
    }
  }
  if (!done) throw memsgd::Cancelled{};
  return py::make_tuple(L, l, with_error ? py::object(error) : py::object(py::none()));
}

// The stationary maps' arguments: eigenvalues, one-row algorithm, one-entry noise (its self_noise).
struct StationaryMaps {
  Converter conv;
  const Array* lam = nullptr;
  memsgd::AlgorithmParams params;
  double self_noise = 0.0;

  StationaryMaps(const py::object& eigenvalues, const py::object& algorithm, const py::object& noise, double shift) {
    lam = &eigenvalues_from(conv, eigenvalues);
    params = algorithm_from(conv, algorithm, "", true);
    self_noise = noise_from(conv, noise, "", true).self_noise[0];
    require(std::isfinite(shift), "shift must be finite");
  }
  py::ssize_t K() const { return lam->size(); }
  py::ssize_t N() const { return params.memory + 1; }
  py::ssize_t P() const { return N() * (N() + 1) / 2; }
  std::size_t count() const { return static_cast<std::size_t>(K()); }
};

py::tuple moment_poles(const py::object& eigenvalues, const py::object& algorithm, const py::object& noise,
                       double shift, bool first_moments) {
  StationaryMaps in(eigenvalues, algorithm, noise, shift);
  const py::ssize_t K = in.K();
  ComplexArray out({K, first_moments ? in.N() : in.P()});
  Array slow(K), slow_error(K);
  {
    py::gil_scoped_release release;
    const memsgd::MomentMaps maps(in.lam->data(), in.count(), in.params, in.self_noise, shift);
    if (first_moments)
      memsgd::first_moment_poles(maps, out.mutable_data(), slow.mutable_data(), slow_error.mutable_data());
    else
      memsgd::moment_poles(maps, out.mutable_data(), slow.mutable_data(), slow_error.mutable_data());
  }
  return py::make_tuple(out, slow, slow_error);
}

py::tuple stationary_moments(const py::object& eigenvalues, const py::object& algorithm, const py::object& noise,
                             double shift) {
  StationaryMaps in(eigenvalues, algorithm, noise, shift);
  Array Y({in.K(), in.P()}), mu({in.K(), in.N()});
  {
    py::gil_scoped_release release;
    const memsgd::MomentMaps maps(in.lam->data(), in.count(), in.params, in.self_noise, shift);
    memsgd::stationary_moments(maps, Y.mutable_data(), mu.mutable_data());
  }
  return py::make_tuple(Y, mu);
}

ComplexArray generating_sums(const py::object& eigenvalues, const py::object& algorithm, const py::object& noise,
                             const py::object& u_weights, const py::object& v_weights, const py::object& order,
                             const py::object& s, const py::object& n_slow, const py::object& slow_delta,
                             const py::object& slow_error, double shift, const py::object& second,
                             const py::object& first, const py::object& second_source, const py::object& first_source,
                             const py::object& first_slow_delta, const py::object& first_slow_error, int threads,
                             const py::object& control) {
  StationaryMaps in(eigenvalues, algorithm, noise, shift);
  Converter& conv = in.conv;
  const py::ssize_t K = in.K(), N = in.N(), P = in.P();
  const Array& wu = conv.real(u_weights, "u_weights", {{K}, "(K,)"});
  const Array& wv = conv.real(v_weights, "v_weights", {{K}, "(K,)"});
  const IndexArray ord = conv.integers(order, "order", {{K}, "(K,), a permutation of range(K)"});
  const ComplexArray nodes = conv.complex(s, "s", {{kAny}, "(nodes,)"});
  const py::ssize_t n = nodes.size();
  const IndexArray split = conv.integers(n_slow, "n_slow", {{n}, "(nodes,) like s"});
  require(slow_delta.is_none() == slow_error.is_none(), "slow_delta and slow_error go together");
  // slow_delta is NaN where a map has no real eigenvalue (moment_poles)
  const double* sd = conv.optional(slow_delta, "slow_delta", {{K}, "(K,)"}, false);
  const double* se = conv.optional(slow_error, "slow_error", {{K}, "(K,)"}, false);
  memsgd::AffineInput affine;
  affine.second = conv.optional(second, "second", {{K, P}, "(K, P)"});
  affine.first = conv.optional(first, "first", {{K, N}, "(K, M + 1)"});
  affine.second_source = conv.optional(second_source, "second_source", {{K}, "(K,)"});
  affine.first_source = conv.optional(first_source, "first_source", {{K}, "(K,)"});
  require(first_slow_delta.is_none() == first_slow_error.is_none(), "first_slow_delta and first_slow_error go together");
  affine.first_slow_delta = conv.optional(first_slow_delta, "first_slow_delta", {{K}, "(K,)"}, false);
  affine.first_slow_error = conv.optional(first_slow_error, "first_slow_error", {{K}, "(K,)"});
  threads = threads_from(threads);
  memsgd::RunControl* run = control_from(control);
  ComplexArray out({n, py::ssize_t(12)});
  bool done;
  {
    py::gil_scoped_release release;
    const memsgd::MomentMaps maps(in.lam->data(), in.count(), in.params, in.self_noise, shift);
    done = memsgd::generating_sums(maps, wu.data(), wv.data(), ord.data(), static_cast<std::size_t>(n), nodes.data(),
                                   split.data(), sd, se, out.mutable_data(), run, threads, affine);
  }
  if (!done) throw memsgd::Cancelled{};
  return out;
}

int planned_threads(const std::string& work, int memory, std::int64_t nodes, std::int64_t steps, std::int64_t configs,
                    int threads) {
  require(work == "curves" || work == "contour", "work must be 'curves' or 'contour', got '" + work + "'");
  require(memory >= 0 && nodes >= 0 && steps >= 0 && configs >= 1,
          "memory, nodes and steps must be >= 0 and configs >= 1");
  return memsgd::planned_threads(work == "curves" ? memsgd::ParallelWork::Curves : memsgd::ParallelWork::ContourSums,
                                 memory, static_cast<std::size_t>(nodes), static_cast<std::size_t>(steps),
                                 static_cast<std::size_t>(configs), threads_from(threads));
}

py::dict thread_policy_state() {
  const memsgd::ThreadPolicyState s = memsgd::thread_policy_state();
  py::dict d;
  d["seen_seconds"] = s.seen_seconds;
  d["on_cpu"] = s.on_cpu;
  d["cores_look_idle"] = s.cores_look_idle;
  d["cores_look_busy"] = s.cores_look_busy;
  d["backoff_seconds"] = s.backoff_seconds;
  return d;
}

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

// ======================================= docstrings =======================================
// Google style (Args, Returns, Raises); pybind11-stubgen carries them into python/memsgd/_core.pyi.

constexpr const char* kModuleDoc = R"doc(memsgd compiled core: the exact second-moment recursion, its adjoint, the stationary
moment maps of the long-horizon inversion, and the renewal solver.

Private to memsgd (the public API is memsgd.loss_curve, loss_curves, loss_at, loss_gradient,
loss_from_propagators). Every entry that runs the recursion or its maps takes the same
arguments in the same order::

    entry(spectrum, algorithm, noise, <inputs>, *, <options>, threads=0, control=None)

spectrum = (eigenvalues (K,), weights (K,), scales (K,)[, decay_scale (K,)]); algorithm =
(alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)[, weight_decay (T,)]), T = 1 for a
stationary algorithm; noise = (coupling (n,), self_noise (n,)[, label (n,) or None]), n = 1 or
>= steps. Arrays are float64 after conversion
from bool, integer or float dtypes (TypeError otherwise) and must be finite (ValueError).
Long runs release the GIL; a RunControl publishes their progress and cancels them (RuntimeError
"cancelled"). docs/math.md §3 (the recursion), §4 (propagators, renewal), §8 (the engine).)doc";

constexpr const char* kRunControlDoc = R"doc(Progress of a running core call and a way to stop it from another thread.

Pass one as ``control=`` to evolve, evolve_batch, loss_gradient, generating_sums or
solve_renewal; read its counters from another thread while the call runs (it releases the GIL),
and call cancel() to stop it: the call then raises RuntimeError("cancelled").)doc";

constexpr const char* kEvolveDoc = R"doc(One configuration, every step: the exact mean loss of SGD with memory (docs/math.md §3).

Args:
    spectrum: (eigenvalues (K,), weights (K,), scales (K,)) or (eigenvalues, weights, scales,
        decay_scale (K,) or None), float64, K >= 1: the spectrum nodes, the scale of each node's
        initial second moment (c_k^2 for the loss) and kappa_k > 0, component k's weight decay
        kappa_k rho_t (a preconditioner's; None: 1).
    algorithm: (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)) or (alpha, b, c, D, e,
        weight_decay (T,) or None), float64: the per-step parameters, T = 1 (stationary) or
        T >= steps; weight_decay rho_t >= 0 runs the affine state of weight decay (docs/math.md
        §9; all zero: the plain run, bit for bit).
    noise: (coupling (n,), self_noise (n,)) or (coupling, self_noise, label (n,) or None),
        float64: tau1/B_t, tau2/B_t and the label-noise source sigma2/B_t; n = 1 or n >= steps.
    steps: number of steps, 0 <= steps < MAX_STEPS.
    initial_ggt: start from g g^T (the noise propagator) instead of E11.
    overflow_only: only a non-finite value counts as divergence (propagators), not the
        relative rule L_t > DIVERGENCE_FACTOR L_0.
    adaptive_threads: False: a team of ``threads`` from the first step, never given up.
    alternate_every: tests: n > 0 runs such a team that hands over to one thread every n steps
        and back after n (0: the thread policy decides).
    threads: at most this many threads, 0: the default (max_threads()).
    control: a RunControl (steps_done, cancel; what the thread policy did) or None.

Returns:
    (loss, gradient_point_loss, diverged_at): loss L_t and the gradient-point loss l_t, float64
    arrays of shape (steps + 1,), +inf from the divergence on; diverged_at the first diverged
    step, -1 when the run never diverged.

Raises:
    TypeError: an argument of the wrong type (not a tuple, an array of complex or strings).
    ValueError: a wrong shape, a non-finite entry, steps, threads or alternate_every out of
        range, a run larger than physical memory.
    RuntimeError: cancelled through control.)doc";

constexpr const char* kEvolveBatchDoc = R"doc(C configurations at once, each on one thread, losses at the recorded steps only.

Bitwise equal to evolve() of each configuration (the relative divergence rule, E11 start).

Args:
    spectra: C entries (eigenvalues (K_i,), weights (K_i,), scales (K_i,)[, decay_scale]), as
        evolve's spectrum.
    algorithms: C entries (alpha (T_i,), b (T_i, M_i), c, D, e[, weight_decay]), as evolve's
        algorithm.
    noises: C entries (coupling (n_i,), self_noise (n_i,)[, label or None]), as evolve's noise.
    steps: number of steps of every configuration, 0 <= steps < MAX_STEPS.
    record: increasing int64 steps in [0, steps] (R of them), or None for every step.
    threads: at most this many threads, 0: the default (max_threads()).
    control: a RunControl (configs_done, cancel) or None.

    An array object shared by several configurations is converted and checked once.

Returns:
    (loss, diverged_at): loss float64 (C, R) (R = steps + 1 without record), +inf from each
    configuration's divergence on; diverged_at int64 (C,), -1 where a run never diverged.

Raises:
    TypeError: an entry that is not a tuple, an array of the wrong dtype.
    ValueError: lengths of spectra, algorithms and noises differ; a wrong shape, a non-finite
        entry, record not increasing within [0, steps], steps or threads out of range, a run
        larger than physical memory.
    RuntimeError: cancelled through control.)doc";

constexpr const char* kLossGradientDoc = R"doc(Gradient of J = sum_t loss_weights[t] L_t with respect to every per-step parameter.

The forward pass is evolve()'s run of the same configuration (the same losses bit for bit); the
backward pass is the adjoint of the recursion, with checkpoints every checkpoint_every steps
(docs/math.md §8, "Adjoint").

Args:
    spectrum: (eigenvalues (K,), weights (K,), scales (K,)), as evolve's.
    algorithm: (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)), as evolve's; weight
        decay only through the memory-(M+1) reduction (memsgd._affine), not as weight_decay.
    noise: (coupling (n,), self_noise (n,)[, label (n,) or None]), as evolve's.
    steps: number of steps, 0 <= steps < MAX_STEPS.
    loss_weights: float64 (steps + 1,), finite, >= 0; the backward pass starts at the last
        nonzero weight (the horizon).
    checkpoint_every: segment length C of the checkpointing, 0: chosen (about sqrt(horizon);
        gradient_checkpointing()).
    general_kernel: use the dense any-memory engine and backward step for every M (tests).
    alternate_every: tests: as evolve's, for both passes.
    threads: at most this many threads, 0: the default (max_threads()).
    control: a RunControl (steps_done: forward then backward steps; cancel) or None.

Returns:
    (value, diverged_at, loss, d_alpha, d_b, d_c, d_D, d_e, d_coupling, d_self_noise,
    checkpoint_every, stored_states, d_label): value J (float, +inf when a weighted step
    diverged, the gradients then NaN); diverged_at as evolve's; loss (steps + 1,); the
    gradients float64 with ``steps`` rows: d_alpha (steps,), d_b, d_c, d_e (steps, M),
    d_D (steps, M, M), d_coupling, d_self_noise, d_label (steps,) (rows from the horizon on are
    0); checkpoint_every the segment length used; stored_states the peak number of K-component
    states held.

Raises:
    TypeError: an argument of the wrong type.
    ValueError: a wrong shape, a non-finite or negative loss weight, steps, threads or
        checkpoint_every out of range, a run larger than physical memory.
    RuntimeError: cancelled through control.)doc";

constexpr const char* kPlannedThreadsDoc = R"doc(The most threads the thread policy lets a run use before it measures anything.

Args:
    work: 'curves': ``configs`` curves (evolve, evolve_batch; loss_gradient's passes plan as one
        curve); 'contour': loss_at's contour sums (generating_sums) over ``steps`` nodes.
    memory: M >= 0.
    nodes: K >= 0 components.
    steps: steps (or contour nodes) >= 0.
    configs: configurations >= 1.
    threads: the threads requested, 0: the default (max_threads()).

Returns:
    int: the threads planned (1: the run stays on one thread).

Raises:
    ValueError: an unknown work, a size or threads out of range.)doc";

constexpr const char* kSolveRenewalDoc = R"doc(Solve the renewal equations of the loss expansion (docs/math.md §4).

    l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s},

for t = 0..n-1 (V[0] and V'[0] are ignored). Passing the same array for U and U_prime (V and
V_prime) convolves once.

Args:
    U, U_prime, V, V_prime: float64 (n,), finite.
    method: 'fft' (relaxed convolution, O(n log^2 n)) or 'direct' (O(n^2)).
    with_error: also estimate the absolute error of L (4-5 more solves).
    control: a RunControl (steps_done over the 1-6 passes of n outputs; cancel) or None.

Returns:
    (L, l, error): float64 (n,) each, +inf from the first overflow on; error None unless
    with_error.

Raises:
    TypeError: an argument of the wrong type.
    ValueError: shapes differ, a non-finite entry, an unknown method.
    RuntimeError: cancelled through control.)doc";

constexpr const char* kMomentPolesDoc = R"doc(Poles of the generating functions of a stationary algorithm (docs/math.md §4, §9).

For every eigenvalue the values s = log(mu) of the eigenvalues mu of the moment map T_k on the
P = (M+1)(M+2)/2 coordinates of a symmetric second moment; the real eigenvalue closest to 1 is
refined to relative accuracy.

Args:
    eigenvalues: float64 (K,), K >= 1.
    algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
    noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
    shift: weight decay rho (the maps of S_k at lambda_k + rho, self-noise at lambda_k).
    first_moments: the first-moment maps S_k instead (N = M + 1 poles per eigenvalue).

Returns:
    (poles, slow_delta, slow_error): poles complex128 (K, P) (or (K, M + 1)), imaginary parts in
    (-pi, pi], -inf for a zero eigenvalue; slow_delta float64 (K,) the real eigenvalue delta =
    mu - 1 closest to 0 (NaN if none); slow_error float64 (K,) how far a double-precision solve
    may move it.

Raises:
    TypeError: an argument of the wrong type.
    ValueError: a wrong shape, more than one row or entry, a non-finite entry.)doc";

constexpr const char* kStationaryMomentsDoc = R"doc(The fixed-point pieces of the moment maps at z = 1 (docs/math.md §9).

Args:
    eigenvalues: float64 (K,), K >= 1.
    algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
    noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
    shift: weight decay rho.

Returns:
    (Y, mu): Y float64 (K, P), Y_k = (I - T_k)^-1 g g^T packed (x_ij, i <= j), the stationary
    second moment per unit noise drive; mu float64 (K, M + 1), mu_k = (I - S_k)^-1 (-shift g),
    the stationary first moment per unit w*_k. Inf or NaN where I - T_k or I - S_k is singular.

Raises:
    TypeError: an argument of the wrong type.
    ValueError: a wrong shape, more than one row or entry, a non-finite entry.)doc";

constexpr const char* kGeneratingSumsDoc = R"doc(Generating functions U, U', V, V' at complex nodes s = -log z (docs/math.md §4, §9).

For each node, the weighted sums over the slow set (the first n_slow[j] components of order) and
the fast set (the rest) of u = <E11, (I - zT_k)^-1 X_k(0)>, u' = <h h^T, ...> (weights u_weights)
and v = z <E11, (I - zT_k)^-1 g g^T>, v' (weights v_weights). Sums run in the given order, so the
result does not depend on the thread count.

Args:
    eigenvalues: float64 (K,), K >= 1.
    algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
    noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
    u_weights, v_weights: float64 (K,), finite.
    order: int64 (K,), a permutation of range(K).
    s: complex128 (nodes,), finite.
    n_slow: int64 (nodes,): the size of each node's slow set.
    slow_delta, slow_error: float64 (K,) from moment_poles, or None (together): the slow poles'
        uncertainty, for the error columns.
    shift: weight decay rho.
    second: float64 (K, P) initial second moments replacing E11, or None.
    first: float64 (K, M + 1) initial first moments (times w*), or None.
    second_source, first_source: float64 (K,) constant sources along g g^T and g, or None.
    first_slow_delta, first_slow_error: float64 (K,) from moment_poles(first_moments=True), or
        None (together).
    threads: at most this many threads, 0: the default (max_threads()).
    control: a RunControl (steps_done = nodes finished; cancel) or None.

Returns:
    complex128 (nodes, 12): columns 0-7 (U_S, U'_S, V_S, V'_S, U_F, U'_F, V_F, V'_F); columns
    8-11 (real) bounds on the errors of (U_S, U'_S), (V_S, V'_S), (U_F, U'_F), (V_F, V'_F) from
    the slow poles' uncertainty (0 without slow_delta).

Raises:
    TypeError: an argument of the wrong type.
    ValueError: a wrong shape, order not a permutation, a non-finite node or input, an optional
        pair given half.
    RuntimeError: cancelled through control.)doc";

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = kModuleDoc;
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

  py::class_<memsgd::RunControl>(m, "RunControl", py::module_local(), kRunControlDoc)
      .def(py::init<>())
      .def_property_readonly(
          "steps_done", [](const memsgd::RunControl& c) { return c.steps_done.load(); },
          "Steps (or nodes, or outputs) of the call finished so far.")
      .def_property_readonly(
          "configs_done", [](const memsgd::RunControl& c) { return c.configs_done.load(); },
          "Configurations of an evolve_batch call finished so far.")
      .def_property_readonly(
          "largest_team", [](const memsgd::RunControl& c) { return c.largest_team.load(); },
          "The most threads that worked together (the thread policy's choice; 1: alone).")
      .def_property_readonly(
          "team_steps", [](const memsgd::RunControl& c) { return c.team_steps.load(); },
          "Lockstep steps run by a team of two or more threads.")
      .def_property_readonly(
          "team_tries", [](const memsgd::RunControl& c) { return c.team_tries.load(); },
          "Lockstep teams opened (after the lone thread measured that one could pay).")
      .def_property_readonly(
          "team_drops", [](const memsgd::RunControl& c) { return c.team_drops.load(); },
          "Lockstep teams given up for one thread (measured no faster than it).")
      .def(
          "cancel", [](memsgd::RunControl& c) { c.cancel.store(true); },
          "Ask the running call to stop; it raises RuntimeError('cancelled') soon after.");

  // ---- the recursion ----
  m.def("evolve", &evolve, py::arg("spectrum"), py::arg("algorithm"), py::arg("noise"), py::arg("steps"),
        py::kw_only(), py::arg("initial_ggt") = false, py::arg("overflow_only") = false,
        py::arg("adaptive_threads") = true, py::arg("alternate_every") = 0, py::arg("threads") = 0,
        py::arg("control") = py::none(), kEvolveDoc);
  m.def("evolve_batch", &evolve_batch, py::arg("spectra"), py::arg("algorithms"), py::arg("noises"),
        py::arg("steps"), py::arg("record") = py::none(), py::kw_only(), py::arg("threads") = 0,
        py::arg("control") = py::none(), kEvolveBatchDoc);
  m.def("loss_gradient", &loss_gradient, py::arg("spectrum"), py::arg("algorithm"), py::arg("noise"),
        py::arg("steps"), py::arg("loss_weights"), py::kw_only(), py::arg("checkpoint_every") = 0,
        py::arg("general_kernel") = false, py::arg("alternate_every") = 0, py::arg("threads") = 0,
        py::arg("control") = py::none(), kLossGradientDoc);

  // ---- the long horizon: stationary maps and renewal ----
  m.def("moment_poles", &moment_poles, py::arg("eigenvalues"), py::arg("algorithm"), py::arg("noise"),
        py::kw_only(), py::arg("shift") = 0.0, py::arg("first_moments") = false, kMomentPolesDoc);
  m.def("stationary_moments", &stationary_moments, py::arg("eigenvalues"), py::arg("algorithm"), py::arg("noise"),
        py::kw_only(), py::arg("shift") = 0.0, kStationaryMomentsDoc);
  m.def("generating_sums", &generating_sums, py::arg("eigenvalues"), py::arg("algorithm"), py::arg("noise"),
        py::arg("u_weights"), py::arg("v_weights"), py::arg("order"), py::arg("s"), py::arg("n_slow"), py::kw_only(),
        py::arg("slow_delta") = py::none(), py::arg("slow_error") = py::none(), py::arg("shift") = 0.0,
        py::arg("second") = py::none(), py::arg("first") = py::none(), py::arg("second_source") = py::none(),
        py::arg("first_source") = py::none(), py::arg("first_slow_delta") = py::none(),
        py::arg("first_slow_error") = py::none(), py::arg("threads") = 0, py::arg("control") = py::none(),
        kGeneratingSumsDoc);
  m.def("solve_renewal", &solve_renewal, py::arg("U"), py::arg("U_prime"), py::arg("V"), py::arg("V_prime"),
        py::arg("method") = "fft", py::kw_only(), py::arg("with_error") = false, py::arg("control") = py::none(),
        kSolveRenewalDoc);

  // ---- sizes and limits ----
  m.def("step_cost", &memsgd::step_cost, py::arg("memory"),
        "Multiply-adds per component and step of the engine for `memory` (int >= 0); a float.");
  m.def("state_bytes", &memsgd::state_bytes, py::arg("memory"), py::arg("nodes"), py::arg("configs"),
        py::arg("threads"), py::arg("weight_decay") = false,
        "Bytes of state the core allocates for a run of `configs` configurations of `memory` on `nodes` "
        "components with `threads` threads (outputs not included; weight_decay: the affine state); a float.");
  m.def("gradient_bytes", &memsgd::gradient_bytes, py::arg("memory"), py::arg("nodes"), py::arg("steps"),
        py::arg("horizon"), py::arg("checkpoint_every"), py::arg("threads"),
        "Bytes a loss_gradient run allocates (outputs for `steps`, stored states up to `horizon`, the "
        "engine's state); checkpoint_every 0: chosen as loss_gradient chooses it. A float.");
  m.def(
      "gradient_checkpointing",
      [](int memory, std::size_t nodes, std::size_t horizon, std::size_t checkpoint_every) {
        const memsgd::CheckpointPlan p = memsgd::gradient_checkpointing(memory, nodes, horizon, checkpoint_every);
        return py::make_tuple(p.every, p.streamed, p.cache_budget);
      },
      py::arg("memory"), py::arg("nodes"), py::arg("horizon"), py::arg("checkpoint_every") = 0,
      "loss_gradient's checkpointing for `memory` on `nodes` components up to `horizon`: returns "
      "(every, streamed, cache_budget): the segment length (checkpoint_every, or chosen when 0), whether "
      "the recomputed states bypass the cache, and the cache budget in bytes. ValueError: memory < 0.");
  m.def("physical_memory", &memsgd::physical_memory_bytes, "Physical memory of this machine in bytes (0 if unknown).");
  m.def("max_threads", &memsgd::max_threads,
        "Threads the core uses by default (OpenMP, at most thread_limit()), 1 without OpenMP.");
  m.def("thread_limit", &memsgd::thread_limit,
        "The most threads a run uses (4 per processor; larger requests are capped), 1 without OpenMP.");

  // ---- the thread policy (cpp/src/thread_policy.hpp) ----
  m.def("planned_threads", &planned_threads, py::arg("work"), py::arg("memory"), py::arg("nodes"), py::arg("steps"),
        py::kw_only(), py::arg("configs") = 1, py::arg("threads") = 0, kPlannedThreadsDoc);
  m.def("set_always_team", &memsgd::set_always_team, py::arg("on"),
        "Tests: on=True makes every run that may use two or more threads use them from its first step (lockstep "
        "runs never give their team up; independent tasks run one per thread), whatever the thread policy's "
        "model and measurements say; process-wide. on=False restores the policy.");
  m.def("thread_policy_state", &thread_policy_state,
        "What the thread policy has measured in this process, a dict: seen_seconds (lone-thread time seen "
        "lately, decaying over ~0.1 s), on_cpu (its CPU time / wall time), cores_look_idle (runs with a barrier "
        "per step may try a team), cores_look_busy (independent tasks stay on one thread), backoff_seconds "
        "(until a team may be tried again after one failed).");

  // ---- introspection ----
  m.def("build_info", &build_info,
        "This build: a dict with version, compiler, build_type, openmp, openmp_version, max_threads, "
        "native, architecture, simd_compiled, simd_supported, simd_active.");
  m.def("simd_path", &memsgd::simd_path, "The SIMD path the kernels use (baseline, avx2 or avx512).");
  m.def("set_simd_path", &memsgd::set_simd_path, py::arg("name"),
        "Use SIMD path `name` (auto, baseline, avx2, avx512) from the next run on. ValueError: a path "
        "unknown, not compiled, or not supported by this CPU.");
  m.def("fma_probe", &memsgd::fma_probe, py::arg("path"), py::arg("iterations"),
        "Peak probe of SIMD path `path`: `iterations` rounds of independent 8-lane multiply-adds; returns "
        "the flops done (time the call). ValueError: a path this CPU cannot run.");

  // ---- the fused optimizer step of memsgd.torch (python/memsgd/torch/_fused.py) ----
  m.def("elementwise_step", &memsgd::elementwise_step, py::arg("codes"), py::arg("scalars"),
        py::arg("registers"), py::arg("pointers"), py::arg("sizes"), py::arg("is_double"), py::kw_only(),
        py::arg("threads"), py::call_guard<py::gil_scoped_release>(),
        "Internal (memsgd.torch, fused=True; see memsgd.torch._fused): run an elementwise program over raw "
        "float/double arrays given by address. codes: 4 int32 per operation (kind, dst, a, c; kinds 0: "
        "r[dst] = r[a] s, 1: r[dst] = r[a] s + r[c], 2: r[dst] = r[a] / s), scalars: one per operation, "
        "registers: arrays per tensor plus temporaries, pointers: the arrays' addresses (tensor-major), "
        "sizes: elements per tensor, is_double: float64 (else float32), threads: at most this many (values "
        "below 1 mean 1). The "
        "caller guarantees the addresses and sizes. ValueError: a malformed program.");
}
