"""Pixel-level classification of Sentinel-2 patches (seed D5.2 section 3.2.1): a U-Net with a
ResNet-50 encoder, self-supervised pre-training of the encoder, training and sliding-window
prediction."""
