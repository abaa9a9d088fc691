"""The latent space: its t-SNE map, new images sampled from it, and the classifier that judges them."""
