"""Golden outputs of Keras' ImageDataGenerator geometry, for tests/kernels/gather.rs.

Applies keras.src.legacy.preprocessing.image.apply_affine_transform (what ImageDataGenerator's
apply_transform calls: scipy.ndimage.affine_transform, order=1, fill_mode='nearest') with fixed
parameters to fixed channels-last images as the book feeds them (uint8 / 255 in float32), then the
horizontal flip apply_transform applies after it. Writes augment_golden.json beside this script.

    KERAS_BACKEND=jax /tmp/kvenv/bin/python assets/keras/make_augment_golden.py
"""

import json
import os

import numpy as np
import keras
from keras.src.legacy.preprocessing.image import apply_affine_transform, flip_axis
import scipy

# (theta degrees, tx, ty, zx, zy, flip): Keras' names; tx comes from height_shift_range * h.
TRANSFORMS = [
    (0.0, 0.0, 0.0, 1.0, 1.0, True),
    (90.0, 0.0, 0.0, 1.0, 1.0, False),
    (0.0, 1.5, -0.75, 1.0, 1.0, False),
    (0.0, 0.0, 0.0, 1.3, 0.85, False),
    (-33.7, 1.2, 0.4, 0.9, 1.17, True),
    (40.0, -1.4, 1.1, 1.2, 0.8, False),
    (12.5, 0.3, -1.3, 0.81, 1.19, True),
]


def image(h, w, c):
    return ((np.arange(h * w * c) * 97 + 13) % 256).astype(np.uint8).reshape(h, w, c)


def main():
    cases = []
    for h, w, c in [(5, 7, 3), (6, 4, 1), (8, 8, 3)]:
        x = image(h, w, c)
        for theta, tx, ty, zx, zy, flip in TRANSFORMS:
            y = apply_affine_transform(
                x.astype(np.float32) / 255, theta, tx, ty, 0, zx, zy,
                row_axis=0, col_axis=1, channel_axis=2, fill_mode="nearest", order=1,
            )
            if flip:
                y = flip_axis(y, 1)
            cases.append({
                "shape": [h, w, c],
                "image": x.flatten().tolist(),
                "theta": theta, "tx": tx, "ty": ty, "zx": zx, "zy": zy, "flip": flip,
                "keras": [float(v) for v in y.astype(np.float32).flatten()],
            })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "augment_golden.json")
    with open(out, "w") as f:
        json.dump({"keras": keras.__version__, "scipy": scipy.__version__, "cases": cases}, f)
        f.write("\n")
    print("keras", keras.__version__, "scipy", scipy.__version__, len(cases), "cases")


if __name__ == "__main__":
    main()
