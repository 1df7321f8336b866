"""TGS salt segmentation toolkit: Keras 3 U-Nets for Kaggle TGS Salt."""

__version__ = "2.0.0"
