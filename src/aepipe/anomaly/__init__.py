"""Anomaly detection: scores, anomaly maps, thresholds and their calibration, the metrics, synthetic
anomalies."""
