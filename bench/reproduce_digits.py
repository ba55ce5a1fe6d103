"""The paper's MNIST experiment on scikit-learn's digits (docs/math.md §7b); same as `memsgd reproduce digits`.

    python bench/reproduce_digits.py [--steps 10000] [--batch 32] [--seed 0] [--out .]
"""
import argparse
import sys

from memsgd.experiments import digits

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    digits.add_arguments(ap)
    sys.exit(digits.main(ap.parse_args()))
