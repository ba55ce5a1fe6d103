"""Every code block of README.md works as written.

Python blocks run one by one, each in a fresh interpreter (a block must not lean on another);
bash blocks: every ``memsgd ...`` command parses and its problem / preset / noise options
build (nothing is computed), and every ``pip install`` names extras that exist.
"""
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from memsgd.cli import _common, build_parser
from memsgd.cli import sweep as sweep_cli

from ._extras import skip_unless_code_can_import

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


PYTHON = _blocks("python")
BASH_LINES = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]


def test_readme_has_the_blocks_this_file_checks():
    assert len(PYTHON) >= 3 and any(line.startswith("memsgd ") for line in BASH_LINES)
    fences = re.findall(r"^```(\w*)$", README, re.M)
    openers, closers = fences[0::2], fences[1::2]
    assert set(openers) <= {"python", "bash"} and set(closers) == {""}, fences  # every block is checked


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_as_written(index, tmp_path):
    skip_unless_code_can_import(PYTHON[index])
    # saved as a script and run as one (not `python -c`): process-based executors (Dask's
    # LocalCluster, spawn pools) import the script again in their workers (issue 18 item 16)
    script = tmp_path / f"readme_block_{index + 1}.py"
    script.write_text(PYTHON[index])
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, f"README python block {index + 1}:\n{PYTHON[index]}\n{out.stderr}"


def _commands():
    for line in BASH_LINES:
        for command in line.split("&&"):
            yield shlex.split(command, comments=True)


@pytest.mark.parametrize("argv", [c for c in _commands() if c and c[0] == "memsgd"], ids=" ".join)
def test_memsgd_command_parses(argv):
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # --help / --version exit 0 after printing
        assert exc.code == 0, argv
        return
    if argv[1] == "sweep":
        sweep_cli.build(args)                    # the grid, factory, problem and noise, nothing computed
        return
    if hasattr(args, "algo"):
        _common.algorithm_from_args(args)        # refuses options the preset does not take
        _common.noise_from_args(args)
    if hasattr(args, "kappa") and isinstance(args.nu, float):
        _common.spectrum_from_args(args)


def test_pip_commands_name_existing_extras():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set()
    for argv in _commands():
        if argv[:2] == ["pip", "install"]:
            for target in argv[2:]:
                match = re.fullmatch(r"\.\[(.*)\]", target)
                if match:
                    named |= set(match.group(1).split(","))
    assert named and named <= extras, named - extras


def test_ci_runs_the_readme_test_command():
    test_command = next(line for line in BASH_LINES if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command.strip() in [line.strip() for line in ci]


def test_entry_point_is_the_parser_checked_here():
    # test_memsgd_command_parses checks build_parser(); the `memsgd` script must run the main() using it
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"memsgd": "memsgd.cli:main"}
