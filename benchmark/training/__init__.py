"""Training one run: the recipe (`recipes`), the data (`data`: the task's waveform cache as splits; `loader`:
prefetching batches; `sampling`: balanced sampling), the steps (`steps`), the loop (`train.run`), its
checkpoints (`checkpoint`), weight averaging (`averaging`) and the metrics (`metrics`)."""
