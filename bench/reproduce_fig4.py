"""Reproduce 'fig4' (see memsgd.experiments.fig4): same as `memsgd reproduce fig4 [options]`.

Usage: python bench/reproduce_fig4.py [--out DIR] [--quick] [--no-progress] [--steps T]
"""
import sys

from memsgd.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "fig4", *sys.argv[1:]]))
