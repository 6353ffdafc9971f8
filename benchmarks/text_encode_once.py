"""Text vectorized once against every epoch, on the same rows, seeds and model, in one run.

For each seed, the defaults-only config of the fine-food reviews (as
`benchmarks/text_probe.py` builds it: `data/fine_foods/train.csv`, test rows
from `test.csv`) is fitted twice from the same initial weights:

- `every epoch` (the previous path): the whole model on raw strings, so the
  text is standardized, split into n-grams and counted every batch of every
  epoch;
- `once` (`kerasflow.training.fitting.fit_model`, what `kerasflow train`
  runs): the vectorization front encodes the training and validation rows
  once (`kerasflow.training.encoded`), the layers after it train on the
  vectors.

Both use the config's own early stopping on its validation rows. Printed per
path: seconds per epoch (from the first epoch's end to the last's), seconds
until the first epoch ended (with the encoding), total fit seconds, epochs and
test accuracy, the mean over seeds, and the ratio of the previous path to the
new one. `--truncate 120` cuts the reviews so the defaults pick the word +
`char_wb` union (short texts).

Measured (mean of seeds 0, 1, 2, both paths in one run, 2 shared cores at a load of 16-25):

| reviews (defaults)                 | s/epoch before | after | ratio | fit s before | after | ratio | accuracy (both)  |
|------------------------------------|----------------|-------|-------|--------------|-------|-------|------------------|
| full, words 1-2 bag                | 3.09           | 2.44  | 1.27x | 79           | 69    | 1.14x | 0.8040 ± 0.0113  |
| cut to 120 ch., words + char_wb 2-5| 6.38           | 4.31  | 1.48x | 176          | 128   | 1.37x | 0.7553 ± 0.0061  |

Tokenizing is not the whole cost of an epoch: the first layer on 20,000 (words)
or 50,000 (union) TF-IDF columns, its gradient and its Adam update every batch
of 32 rows remain, so the union still costs about twice the words' epoch.

Usage: python benchmarks/text_encode_once.py [--seeds 0,1,2] [--truncate CHARS] [--rows N] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from text_probe import defaults_config, reviews  # noqa: E402


def fit_every_epoch(model, x_train, y_train, cfg, validation, on_epoch):
    """The previous fit: the whole model on raw inputs (`fit_model` before the encode-once split)."""
    from kerasflow.training.fitting import build_callbacks
    from kerasflow.training.image_stream import fit_arguments, validation_data

    callbacks = build_callbacks(cfg, on_epoch, has_val=True)
    return model.fit(**fit_arguments(x_train, y_train, cfg.batch_size),
                     validation_data=validation_data(validation, cfg.batch_size), epochs=cfg.epochs,
                     callbacks=callbacks, verbose=0).history


def fit_once(model, x_train, y_train, cfg, validation, on_epoch):
    """The current fit (`kerasflow.training.fitting.fit_model`)."""
    from kerasflow.training.fitting import fit_model

    return fit_model(model, x_train, y_train, cfg, validation=validation, on_epoch=on_epoch).history


def run(config, frame: pd.DataFrame, test_rows: int, fit) -> dict[str, float]:
    """Fits the config's model with `fit` on its split and scores the test rows."""
    import keras

    from kerasflow.data.holdout import split_rows
    from kerasflow.features.labels import decode_predictions
    from kerasflow.features.tabular import as_model_inputs, frame_to_inputs
    from kerasflow.models.families import build_model, fit_model_inputs
    from kerasflow.training.final import model_spec
    from kerasflow.training.fitting import set_seed
    from kerasflow.training.rows import make_partition

    keras.backend.clear_session()
    split = split_rows(frame["score"], config.split, classify=True, test_rows=test_rows)
    fitted = fit_model_inputs(config, frame.iloc[split.train])
    set_seed(config.training.seed)
    model = build_model(None, model_spec(config, fitted.features, fitted.labels))
    train = make_partition(frame, split.train, fitted.features, fitted.labels)
    val = make_partition(frame, split.val, fitted.features, fitted.labels)
    ends: list[float] = []
    start = time.perf_counter()
    history = fit(model, train.x, train.y, config.training, (val.x, val.y), lambda *_: ends.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    epochs = len(history["loss"])
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else seconds
    scores = model.predict(as_model_inputs(frame_to_inputs(frame.iloc[split.test], fitted.features)), verbose=0)
    predicted = decode_predictions(scores, fitted.labels)["prediction"]
    accuracy = float(np.mean(np.asarray(predicted) == frame["score"].iloc[split.test].to_numpy()))
    return {"seconds": seconds, "epochs": epochs, "per_epoch": per_epoch, "first": ends[0] - start, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", type=int, default=0, help="use only the first N training rows (0: all)")
    parser.add_argument("--truncate", type=int, default=0, help="cut every review to N characters (short texts)")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    from kerasflow.heavy import import_tensorflow

    import_tensorflow()
    train, test, train_path, test_path = reviews(args.rows, args.truncate)
    frame = pd.concat([train, test], ignore_index=True)
    paths = {"every epoch": fit_every_epoch, "once": fit_once}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for seed in (int(s) for s in args.seeds.split(",")):
        config, _ = defaults_config(train_path, test_path, seed, args.overrides)
        if seed == int(args.seeds.split(",")[0]):
            print("model:", config.model.model_dump(mode="json", exclude_defaults=True))
        for name, fit in paths.items():
            r = run(config, frame, len(test), fit)
            results[name].append(r)
            print(f"seed {seed} {name:11s}: {r['per_epoch']:.2f} s/epoch, until the first epoch's end "
                  f"{r['first']:.1f} s, fit {r['seconds']:.0f} s "
                  f"({r['epochs']} epochs), accuracy {r['accuracy']:.4f}", flush=True)
    means = {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for name, rs in results.items()}
    for name, m in means.items():
        sd = float(np.std([r["accuracy"] for r in results[name]]))
        print(f"{name:11s} mean: {m['per_epoch']:.2f} s/epoch, fit {m['seconds']:.0f} s ({m['epochs']:.1f} epochs), "
              f"accuracy {m['accuracy']:.4f} ± {sd:.4f}")
    old, new = means["every epoch"], means["once"]
    print(f"ratio every epoch / once: {old['per_epoch'] / new['per_epoch']:.2f}x per epoch, "
          f"{old['seconds'] / new['seconds']:.2f}x fit time; accuracy {new['accuracy'] - old['accuracy']:+.4f}")


if __name__ == "__main__":
    main()
