"""memsgd.schedules.am1_form: the one reader of AM1's matrix form (issue 19 item 3), used by the
torch AM1 optimizer, design's free memory-1 family and the schedule-design experiment."""
import numpy as np
import pytest

import memsgd
from memsgd import schedules

from ._extras import need


def test_reads_the_am1_power_law_back():
    kick, delta, gamma, t0, T = 0.7, 0.3, 1.2, 10.0, 50
    lr, momentum, eta = schedules.am1_form(*schedules.am1_power_law(kick, delta, gamma, t0).parameters(T))
    s = 1.0 + np.arange(T) / t0                       # docs/math.md §7, independently of the generator
    np.testing.assert_allclose(momentum, 1.0 - s ** -gamma, rtol=1e-15, atol=0)
    np.testing.assert_allclose(lr, (kick * s ** delta - kick) * s ** -gamma, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(eta, kick, rtol=1e-14)


def test_heavy_ball_is_am1_without_kick_and_a_memory1_algorithm_reads_too():
    algo = memsgd.heavy_ball(0.2, 0.9)
    lr, momentum, kick = schedules.am1_form([algo.alpha], algo.b, algo.c, algo.D, algo.e)
    assert (lr[0], momentum[0], kick[0]) == (0.2, 0.9, 0.0)


@pytest.mark.parametrize("algo, match", [
    (memsgd.qhm(0.1, 0.9, 0.7), r"schedule is not of AM1 type at step 3: AM1 form needs b == D and e == 0"),
    (memsgd.nesterov(0.1, 0.9), r"schedule is not of AM1 type at step 3: .*e=0\.9"),
    (memsgd.gd(0.1), r"schedule must have memory 1 \(AM1 type\), got memory 0"),
])
def test_refuses_what_is_not_am1(algo, match):
    alpha, b, c, D, e = schedules.constant(algo).parameters(4)
    with pytest.raises(ValueError, match=match):
        schedules.am1_form(alpha[3:], b[3:], c[3:], D[3:], e[3:], first_step=3)


def test_the_three_readers_agree():
    need("torch")
    from memsgd.experiments.schedule_design import _am1_form
    from memsgd.torch._am1 import _schedule_values
    sched = schedules.am1_power_law(0.5, 0.4)
    lr, momentum, kick = schedules.am1_form(*sched.parameters(20))
    assert all(np.array_equal(a, b) for a, b in zip(_am1_form(sched, 20), (lr, 1.0 - momentum, kick)))
    for t in (0, 7, 19):
        assert _schedule_values(sched, t) == (lr[t], momentum[t], kick[t])
