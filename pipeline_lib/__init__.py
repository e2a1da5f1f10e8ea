"""overfocus: saliency-guided regularization of CNNs as a reproducible pipeline."""
