"""Reproduce 'compare' (see memsgd.experiments.compare): same as `memsgd reproduce compare [options]`.

Usage: python bench/reproduce_compare.py [--out DIR] [--quick] [--no-progress] [--steps T]
"""
import sys

from memsgd.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "compare", *sys.argv[1:]]))
