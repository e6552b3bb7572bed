"""Makes the golden Keras files that tests/keras_golden.rs reads, with real Keras 3.

    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras "jax[cpu]"
    KERAS_BACKEND=jax /tmp/kvenv/bin/python assets/keras/make_golden.py

(made with keras 3.15.1, jax 0.10.2, h5py 3.16.0, numpy 2.4.6). Every weight is set from a formula
the Rust test repeats, so the test checks each value one by one:

    tensor k (0-based, in model.weights order), flat index i (C order of Keras' own shape):
        value = ((7 * i + 13 * k) % 23 - 11) / 64          (exact in float32)

The prediction input is image n, row y, column x, channel c of shape (2, 8, 8, 3):
        x[n, y, x, c] = ((5 * flat + 3 * n) % 17) / 16     where flat is the C-order index
"""

import json
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def notebook(input_shape, hidden, classes, filters):
    """The notebook's model: Conv2D, relu, pool, dropout, flatten, Dense, relu, dropout, Dense, softmax."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(filters, (3, 3), padding="same"),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(hidden),
            layers.Activation("relu"),
            layers.Dropout(0.5),
            layers.Dense(classes),
            layers.Activation("softmax"),
        ]
    )


def path(name):
    return os.path.join(HERE, name)


def write_json(name, text):
    with open(path(name), "w") as f:
        f.write(text)
        f.write("\n")


def config_models():
    """Architectures that `train --config` starts from fresh weights: every initialiser form Keras 3
    writes, and a compiled .keras whose compile_config names the optimizer and loss. Input 8x8x1 and
    10 classes, the shape of the tests' tiny IDX sets. A fresh session, so the layer names are
    conv2d, conv2d_1, dense, … whatever was built before."""
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(4, (3, 3), padding="same", activation="relu",
                          kernel_initializer="he_normal", bias_initializer="zeros"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(3, (2, 2), kernel_initializer=keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_out", distribution="uniform"),
                bias_initializer=keras.initializers.Constant(0.1)),
            layers.Flatten(),
            layers.Dense(6, kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
                         bias_initializer="ones"),
            layers.Activation("relu"),
            layers.Dense(5, kernel_initializer=keras.initializers.TruncatedNormal(mean=0.1, stddev=0.05),
                         bias_initializer=keras.initializers.RandomUniform(minval=-0.2, maxval=0.3)),
            layers.Dense(10, activation="softmax", kernel_initializer="lecun_uniform",
                         bias_initializer=keras.initializers.Constant(-0.5)),
        ]
    )
    write_json("init_architecture.json", model.to_json())
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002, beta_1=0.8),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.save(path("init_adam.keras"))
    unknown = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Flatten(),
         layers.Dense(10, activation="softmax", kernel_initializer="orthogonal")]
    )
    write_json("unsupported_initializer.json", unknown.to_json())
    adamw = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")]
    )
    adamw.compile(optimizer="adamw", loss="categorical_crossentropy")
    adamw.save(path("unsupported_optimizer.keras"))


def main():
    # The notebook's own model (32x32x3, 10 classes): architecture only, the weights would be 16 MB.
    big = notebook((32, 32, 3), 512, 10, 32)
    write_json("notebook_architecture.json", big.to_json())

    # The tiny variant: same layers, 8x8x3 input, Conv2D(4), Dense(6), Dense(3).
    tiny = notebook((8, 8, 3), 6, 3, 4)
    values = []
    for k, w in enumerate(tiny.weights):
        i = np.arange(int(np.prod(w.shape)), dtype=np.int64)
        v = (((7 * i + 13 * k) % 23 - 11) / 64).astype(np.float32).reshape(w.shape)
        w.assign(v)
        values.append(v)
    write_json("tiny_architecture.json", tiny.to_json())

    # Legacy HDF5 weights, as Keras 3 writes them for model.save_weights in the old layout.
    with h5py.File(path("tiny_weights.h5"), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, tiny)
    # Keras 3's own weights file and archive.
    tiny.save_weights(path("tiny.weights.h5"))
    tiny.save(path("tiny.keras"))
    # A whole model in one legacy HDF5 file (model_config attribute + model_weights group).
    tiny.save(path("tiny_model.h5"))

    # Predictions on a fixed input, for the forward pass check.
    flat = np.arange(2 * 8 * 8 * 3).reshape(2, 8, 8, 3)
    n = np.arange(2).reshape(2, 1, 1, 1)
    x = (((5 * flat + 3 * n) % 17) / 16).astype(np.float32)
    probs = np.asarray(tiny.predict(x, verbose=0), dtype=np.float64)
    write_json(
        "tiny_predictions.json",
        json.dumps({"input": "((5 * flat + 3 * n) % 17) / 16, shape [2, 8, 8, 3]",
                    "probabilities": probs.tolist()}),
    )

    # Models we must refuse, made by real Keras too (the dilated one: more_layers).
    write_json("unsupported_layer.json", unsupported_layer().to_json())

    config_models()

    # Check that Keras reads back what it wrote, and report the layouts.
    again = keras.models.load_model(path("tiny.keras"))
    for a, b in zip(again.weights, values):
        assert np.array_equal(np.asarray(a), b)
    with zipfile.ZipFile(path("tiny.keras")) as z:
        print("tiny.keras:", [(i.filename, i.compress_type) for i in z.infolist()])
    print("keras", keras.__version__, "backend", keras.backend.backend(), "h5py", h5py.__version__)
    pooling_models()


def pooling_models():
    """The pooling layers in two tiny models, named explicitly so the files do not depend on what
    else the session built. `pooling_avg`: 9x7x3 → Conv2D(4, 3x3, same) → AveragePooling2D(3,
    strides 2, same: clipped border windows) → Conv2D(5, 2x2, relu) → GlobalAveragePooling2D →
    Dense(3, softmax). `pooling_max`: 8x9x2 → AvgPool2D((2, 3), strides (1, 2), valid) →
    Conv2D(4, 2x2, same) → GlobalMaxPool2D(keepdims=True) → Flatten → Dense(3, softmax)."""
    avg = keras.Sequential(
        [
            keras.Input((9, 7, 3)),
            layers.Conv2D(4, (3, 3), padding="same", name="conv_a"),
            layers.AveragePooling2D(3, strides=2, padding="same", name="avg_pool"),
            layers.Conv2D(5, (2, 2), activation="relu", name="conv_b"),
            layers.GlobalAveragePooling2D(name="global_avg"),
            layers.Dense(3, activation="softmax", name="head"),
        ],
        name="pooling_avg",
    )
    peak = keras.Sequential(
        [
            keras.Input((8, 9, 2)),
            layers.AvgPool2D((2, 3), strides=(1, 2), name="avg_pool"),
            layers.Conv2D(4, (2, 2), padding="same", name="conv"),
            layers.GlobalMaxPool2D(keepdims=True, name="global_max"),
            layers.Flatten(name="flatten"),
            layers.Dense(3, activation="softmax", name="head"),
        ],
        name="pooling_max",
    )
    for model in (avg, peak):
        name = model.name
        for k, w in enumerate(model.weights):
            i = np.arange(int(np.prod(w.shape)), dtype=np.int64)
            w.assign((((7 * i + 13 * k) % 23 - 11) / 64).astype(np.float32).reshape(w.shape))
        write_json(f"{name}_architecture.json", model.to_json())
        with h5py.File(path(f"{name}_weights.h5"), "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        model.save_weights(path(f"{name}.weights.h5"))
        model.save(path(f"{name}.keras"))
        model.save(path(f"{name}_model.h5"))
        shape = (2,) + tuple(model.input_shape[1:])
        flat = np.arange(int(np.prod(shape))).reshape(shape)
        n = np.arange(2).reshape(2, 1, 1, 1)
        x = (((5 * flat + 3 * n) % 17) / 16).astype(np.float32)
        probs = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
        write_json(
            f"{name}_predictions.json",
            json.dumps({"input": f"((5 * flat + 3 * n) % 17) / 16, shape {list(shape)}",
                        "probabilities": probs.tolist()}),
        )

    more_layers()


def more_layers():
    """The layers of issue 15 beyond the notebook's: strided and bias-free convolutions, Dense without
    bias, the activations elu, leaky_relu, sigmoid and tanh as arguments and as Activation layers, and
    a LeakyReLU layer.
    Writes more_layers.{keras,weights.h5}, more_layers_weights.h5 (legacy), more_layers_model.h5,
    more_layers_architecture.json and more_layers_predictions.json (the probabilities and every
    layer's output), with the weight formula and the prediction input of the module docstring (shape
    (2, 9, 9, 3)); and unsupported_dilation.json.

    Sizes, TensorFlow's 'same' padding asymmetric where the total is odd:
        9x9x3  Conv2D 4 (4, 3) strides 2 same, elu      -> 5x5x4  (pad rows 1 + 2, columns 1 + 1)
        5x5x4  Conv2D 5 (2, 3) strides (1, 2) valid, no bias, leaky_relu -> 4x2x5
               Activation sigmoid
        4x2x5  Conv2D 3 (3, 3) strides 2 same, tanh     -> 2x1x3  (pad rows 0 + 1, columns 0 + 1)
               Flatten -> 6, Dense 6 tanh, LeakyReLU 0.1, Dense 5 no bias, Activation elu,
               Activation leaky_relu, Dense 3 softmax
    """
    keras.utils.clear_session()
    model = keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            layers.Conv2D(4, (4, 3), strides=2, padding="same", activation="elu"),
            layers.Conv2D(5, (2, 3), strides=(1, 2), use_bias=False, activation="leaky_relu"),
            layers.Activation("sigmoid"),
            layers.Conv2D(3, (3, 3), strides=(2, 2), padding="same", activation="tanh"),
            layers.Flatten(),
            layers.Dense(6, activation="tanh"),
            layers.LeakyReLU(negative_slope=0.1),
            layers.Dense(5, use_bias=False),
            layers.Activation("elu"),
            layers.Activation("leaky_relu"),
            layers.Dense(3, activation="softmax"),
        ],
        name="more_layers",
    )
    values = []
    for k, w in enumerate(model.weights):
        i = np.arange(int(np.prod(w.shape)), dtype=np.int64)
        v = (((7 * i + 13 * k) % 23 - 11) / 64).astype(np.float32).reshape(w.shape)
        w.assign(v)
        values.append(v)
    write_json("more_layers_architecture.json", model.to_json())
    with h5py.File(path("more_layers_weights.h5"), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    model.save_weights(path("more_layers.weights.h5"))
    model.save(path("more_layers.keras"))
    model.save(path("more_layers_model.h5"))

    flat = np.arange(2 * 9 * 9 * 3).reshape(2, 9, 9, 3)
    n = np.arange(2).reshape(2, 1, 1, 1)
    x = (((5 * flat + 3 * n) % 17) / 16).astype(np.float32)
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    # Every layer's output too (flattened per image): the probabilities alone are too flat a
    # function of the input to tell a misplaced pixel.
    each = keras.Model(model.inputs, [layer.output for layer in model.layers])
    outputs = [np.asarray(o, dtype=np.float64).reshape(2, -1).tolist() for o in each.predict(x, verbose=0)]
    write_json(
        "more_layers_predictions.json",
        json.dumps({"input": "((5 * flat + 3 * n) % 17) / 16, shape [2, 9, 9, 3]",
                    "probabilities": probs.tolist(), "layer_outputs": outputs}),
    )
    again = keras.models.load_model(path("more_layers.keras"))
    for a, b in zip(again.weights, values):
        assert np.array_equal(np.asarray(a), b)
    assert np.allclose(again.predict(x, verbose=0), probs, atol=1e-7)

    dilated = keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Conv2D(4, (3, 3), dilation_rate=(2, 2)), layers.Flatten(),
         layers.Dense(3, activation="softmax")]
    )
    write_json("unsupported_dilation.json", dilated.to_json())
    print("more_layers:", [w.path for w in model.weights])

    batchnorm()


def unsupported_layer():
    """A model with a layer we do not run (Conv2DTranspose), which we must refuse by name."""
    return keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Conv2DTranspose(4, (3, 3)), layers.Flatten(),
         layers.Dense(3, activation="softmax")]
    )


def batchnorm():
    """BatchNormalization, both sides of it, for tests/keras_batchnorm.rs (run alone with
    `python -c "import make_golden; make_golden.batchnorm()"` from this folder).

    The model: Input (6, 6, 3), Conv2D(4, 3x3, same), BatchNormalization, ReLU, Flatten, Dense(5),
    BatchNormalization, Dense(3, softmax). Weights by tensor k (model.weights order: for each
    BatchNormalization gamma, beta, moving_mean, moving_variance) and flat index i:
        moving_variance: 0.5 + ((7 * i + 13 * k) % 23) / 32
        gamma:           1 + ((7 * i + 13 * k) % 23 - 11) / 64
        every other:     ((7 * i + 13 * k) % 23 - 11) / 64
    Input x[n, y, x, c] of shape (4, 6, 6, 3) = ((5 * flat + 3 * n) % 17) / 16 - 0.25, labels
    n % 3. Files: batchnorm_architecture.json (to_json), batchnorm.keras, batchnorm.weights.h5,
    batchnorm_weights.h5 (legacy), batchnorm_golden.json: the predictions (inference: the moving
    statistics) and, after one train_on_batch with SGD(0.1) on categorical cross-entropy, every
    weight in model.weights order (the moving statistics moved with the batch's).
    """
    # Fresh layer names (conv2d, batch_normalization, …) however many models were built before.
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            layers.Conv2D(4, (3, 3), padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(5),
            layers.BatchNormalization(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    for k, w in enumerate(model.weights):
        i = np.arange(int(np.prod(w.shape)), dtype=np.int64)
        base = (7 * i + 13 * k) % 23
        if w.path.endswith("moving_variance"):
            v = 0.5 + base / 32
        elif w.path.endswith("gamma"):
            v = 1 + (base - 11) / 64
        else:
            v = (base - 11) / 64
        w.assign(v.astype(np.float32).reshape(w.shape))
    write_json("batchnorm_architecture.json", model.to_json())
    with h5py.File(path("batchnorm_weights.h5"), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    model.save_weights(path("batchnorm.weights.h5"))
    model.save(path("batchnorm.keras"))

    flat = np.arange(4 * 6 * 6 * 3).reshape(4, 6, 6, 3)
    n = np.arange(4).reshape(4, 1, 1, 1)
    x = (((5 * flat + 3 * n) % 17) / 16 - 0.25).astype(np.float32)
    labels = np.arange(4) % 3
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss="categorical_crossentropy")
    loss = model.train_on_batch(x, keras.utils.to_categorical(labels, 3))
    write_json(
        "batchnorm_golden.json",
        json.dumps({
            "input": "((5 * flat + 3 * n) % 17) / 16 - 0.25, shape [4, 6, 6, 3]; labels n % 3",
            "probabilities": probs.tolist(),
            "sgd_learning_rate": 0.1,
            "loss": float(loss),
            "weights_after_step": [np.asarray(w, dtype=np.float64).ravel().tolist()
                                   for w in model.weights],
            "names": [w.path for w in model.weights],
        }),
    )


if __name__ == "__main__":
    main()
