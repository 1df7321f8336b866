"""Facts about the Kaggle TGS Salt Identification Challenge, in one place."""

import numpy as np

COMPETITION = "tgs-salt-identification-challenge"
IMAGE_SIZE = 101  # every image and mask is IMAGE_SIZE x IMAGE_SIZE pixels
IOU_THRESHOLDS = np.arange(0.5, 1.0, 0.05)  # 0.50, 0.55, ..., 0.95
SUBMISSION_COLUMNS = ("id", "rle_mask")
# The probability threshold used before (or without) a tuned one: the midpoint of a sigmoid
DEFAULT_THRESHOLD = 0.5
