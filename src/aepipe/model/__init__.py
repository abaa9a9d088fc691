"""The model: the autoencoder and the defect segmenter, their training, and their passes over images."""
