"""Training data: the procedural ``shapes`` dataset (default training data, test data, evaluation oracle)."""
