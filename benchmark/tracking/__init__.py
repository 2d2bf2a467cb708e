"""What a run records and where: the MLflow store (`store`), surviving outages (`outages`), artifacts
(`artifacts`), the code that trained it (`provenance`), the numerics it was computed with (`numerics`), and
its compute cost (`compute`)."""
