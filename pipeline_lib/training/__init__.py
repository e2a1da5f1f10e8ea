"""Training: one loop for every method, resumable and logged."""
