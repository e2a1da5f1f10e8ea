"""The study's metrics, one module per concern."""
