"""LSTM crop-type classification (seed D5.2 sections 3.2.4-3.2.5): ``train_lstm`` and ``tile_classifier``."""
