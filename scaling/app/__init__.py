"""The application layer: estimate, compare, plan, report, pareto, importers and the `scaling` CLI.

It imports the vocabulary (`scaling.*`), `profilers` and `fits` at the top of its modules;
nothing below it imports it (tests/test_layout.py checks this).
"""
