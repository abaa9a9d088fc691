"""Data: the published datasets' download and files, a folder of your own images, image decoding."""
