"""TGS salt segmentation toolkit: Keras 3 U-Nets for Kaggle TGS Salt.

Importing the package sets one environment default, before Keras loads TensorFlow (TensorFlow
reads it once, at import): `TF_ENABLE_ONEDNN_OPTS=1`, TensorFlow's oneDNN CPU kernels. TensorFlow
turns them on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on an AVX2 CPU they trained
`best.json`'s U-Net 1.8x as fast as its default Eigen kernels
(`code/benchmarks/cpu_settings.py --compare onednn`). A value the user set is kept
(`TF_ENABLE_ONEDNN_OPTS=0` turns them off). Other backends ignore it.
"""

import os

__version__ = "2.0.0"

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
