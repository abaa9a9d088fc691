"""aepipe: a convolutional autoencoder for images, trained and analysed as a DVC pipeline."""
