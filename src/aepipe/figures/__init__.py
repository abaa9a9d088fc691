"""Figures: the pipeline's plots, and anomaly maps drawn over images."""
