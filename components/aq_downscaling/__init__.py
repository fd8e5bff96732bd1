"""Probabilistic downscaling of CAMS air quality (seed D5.2 §5.2.1): ``aqgan-preproc``,
``aqgan-train``, ``aqgan-generate`` and ``aqgan-predict``. See README.md."""
