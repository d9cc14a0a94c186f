"""ocf's jobs: training, evaluation, generation and benchmarking of a resolved spec.

Floors (each module imports only those below it, and none imports :mod:`ocf.cli`):

- :mod:`ocf.run.train` (the loop), :mod:`ocf.run.bench` (measurement) and
  :mod:`ocf.run.predict` (applying a run to new images or files);
- :mod:`ocf.run.evaluate` (metrics and the evaluation forward pass);
- :mod:`ocf.run.generate` (sampling from a prior);
- :mod:`ocf.run.data` (a spec's dataset), :mod:`ocf.run.checkpoints` (run dirs and
  checkpoints), :mod:`ocf.run.resume` (a resumed run's spec) and :mod:`ocf.run.setup`
  (device, optimizer, the training step);
- :mod:`ocf.run.files` (output folders and atomic writes).

Jobs take a :class:`~ocf.spec.ResolvedSpec` and use the registry it was resolved against;
none of them reaches for the process-wide plugins.
"""
