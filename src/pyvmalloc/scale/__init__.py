"""Layer scale (see docs/design.md): many runs and many dumps at once on Dask: sweeps and fleet analysis."""
