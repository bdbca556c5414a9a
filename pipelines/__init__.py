"""Orchestration: the one layer that may import every part (ARCHITECTURE.md section 2).

The library packages (``shared``, ``sim``, ``cloud``, ``distill``, ``edge``) never
run another verb; what strings verbs together lives here:

- ``earshot experiment`` (``experiments.py``, schema ``experiment_config.py``): makes the
  world and the QA in process (``sim.world``, ``cloud.data_engine``), trains the variants
  (``cloud.train``), scores them (``cloud.experiment_analysis``) and writes the results doc;
- ``earshot bench`` (``bench.py``, schema ``bench_config.py``): runs every part's benchmark
  script on a demo run and gathers the figures; ``link_emulator.py`` gives the benchmarks a
  network profile's round trip, bandwidth and loss on loopback.

``tests/test_boundaries.py`` keeps it that way: no package imports ``pipelines``.
"""
