"""Reproduce 'fig1' (see memsgd.experiments.fig1): same as `memsgd reproduce fig1 [options]`.

Usage: python bench/reproduce_fig1.py [--out DIR] [--quick] [--no-progress] [--steps T]
"""
import sys

from memsgd.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "fig1", *sys.argv[1:]]))
