"""The experiment and rules files that ship with the product.

They are package data so the installed `nrr` finds its defaults from any folder; a user's
own copy is passed with `--experiment` / `--rules` and never has to live here.
"""

from __future__ import annotations

from pathlib import Path

EXPERIMENTS_DIR = Path(__file__).resolve().parent
DEFAULT_EXPERIMENT = EXPERIMENTS_DIR / "quarterly.yaml"
FAST_EXPERIMENT = EXPERIMENTS_DIR / "fast.yaml"
DEFAULT_RULES = EXPERIMENTS_DIR / "rules.yaml"
