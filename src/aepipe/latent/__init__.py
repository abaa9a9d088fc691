"""The latent space: its t-SNE map and new images sampled from it."""
