"""asymptotics(..., check_at=...) and `memsgd stability --check-at`: the asymptotic law of
docs/math.md §6 against the exact loss (memsgd.loss_at) at chosen steps."""
import json

import numpy as np
import pytest

import memsgd as ms
from memsgd.cli import main

HB, SPEC, NOISE = ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(2.0, 1.0), ms.Noise.gaussian(10)


def test_ratios_tend_to_one_in_the_signal_phase():
    steps = (1e4, 1e6, 1e9)
    asy = ms.asymptotics(HB, SPEC, NOISE, check_at=steps)
    assert asy.phase == "signal" and asy.check_steps == (10 ** 4, 10 ** 6, 10 ** 9)
    gap = np.abs(np.array(asy.ratios) - 1)
    assert np.all(np.diff(gap) < 0)
    # nu = 2, zeta = 1/2: the relative correction decays like 1/t here (1.6e-4 at 1e4)
    assert gap[-1] < 1e-8 and gap[0] > 1e-5
    slope = np.polyfit(np.log(asy.check_steps), np.log(gap), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.02)
    # the fields are what they say: loss_at's values and the ratio to the law
    exact = ms.loss_at(HB, SPEC, NOISE, asy.check_steps)
    assert asy.exact == tuple(exact.loss) and asy.exact_error == tuple(exact.error)
    assert asy.ratios == tuple(exact.loss / asy.predict(exact.steps))
    # the law itself is unchanged by the check
    plain = ms.asymptotics(HB, SPEC, NOISE)
    assert (plain.constant, plain.exponent) == (asy.constant, asy.exponent)
    assert plain.check_steps is plain.exact is plain.ratios is plain.exact_error is None


def test_ratios_tend_to_one_in_the_noise_phase():
    algo, spec, noise = ms.heavy_ball(0.3, 0.7), ms.Spectrum.power_law(1.5, 2.5), ms.Noise.gaussian(2)
    asy = ms.asymptotics(algo, spec, noise, check_at=(1e6, 1e9, 1e12))
    assert asy.phase == "noise"
    gap = np.abs(np.array(asy.ratios) - 1)
    # slowly: like t^-(1 - 1/nu) = t^-1/3 (docs/long-horizons.md)
    assert np.all(np.diff(gap) < 0) and gap[-1] < 1e-3
    assert np.all(np.array(asy.exact_error) < 1e-8 * np.array(asy.exact))


@pytest.mark.parametrize("check_at, match", [
    ([0, 10], ">= 1"), ([10, 5], "increasing"), ([1.5], "integers"), ([1e13], "<= 1e\\+12"), ([], "at least one"),
])
def test_bad_check_at(check_at, match):
    with pytest.raises(ValueError, match=match) as info:
        ms.asymptotics(HB, SPEC, NOISE, check_at=check_at)
    assert "check_at" in str(info.value)


def test_stability_command_shows_the_check(capsys):
    assert main(["stability", "--check-at", "1e4,1e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    check = out["asymptotics"]["check"]
    asy = ms.asymptotics(HB, SPEC, NOISE, check_at=(1e4, 1e9))
    assert [c["t"] for c in check] == [10 ** 4, 10 ** 9]
    assert [c["ratio"] for c in check] == list(asy.ratios)
    assert [c["exact"] for c in check] == list(asy.exact)
    assert main(["stability", "--check-at", "1e4,1e9"]) == 0
    text = capsys.readouterr().out
    assert "# the law against the exact loss" in text and "1000000000" in text and "ratio - 1" in text
    assert main(["stability"]) == 0
    assert "ratio" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--check-at", "0,10"], ">= 1"), (["--check-at", "1e4,1.5"], "integers"), (["--check-at", "abc"], "--check-at"),
    (["--check-at", "1e4", "--lr", "30"], "converges"),
])
def test_stability_check_at_errors(capsys, argv, match):
    assert main(["stability", *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and "--check-at" in err and err.count("\n") == 1
