"""dear: the implicit engine (solvers, equilibrium layer), reasoners, node classification,
evaluation and leaderboards.

The CLRS-30 data side lives in the sibling package :mod:`clrs_tasks`.
"""

__version__ = "0.1.0"
