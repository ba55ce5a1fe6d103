"""The paper's MNIST experiment on scikit-learn's digits (docs/math.md §7b): `memsgd reproduce digits`.

    python bench/reproduce_digits.py [--steps 10000] [--batch 32] [--seed 0] [--out DIR]

The options are the CLI's (one definition, in memsgd.cli.reproduce).
"""
import sys

from memsgd.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "digits", *sys.argv[1:]]))
