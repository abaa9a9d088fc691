"""The models: the autoencoder, the defect segmenter and the digit classifier (the judge), their
training, and their passes over images."""
