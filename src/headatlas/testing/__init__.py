"""Models and data for tests and benchmarks: tiny random models, the planted-heads model."""
