"""Writes small GloVe-format word vectors learned from a text column of a training file.

An offline stand-in for downloaded GloVe vectors, used by the fine_foods
configs and tests: positive-PMI co-occurrence counts reduced with truncated
SVD (`kerasflow.features.text.fit_word_vectors`). Fit it on training rows only, never on
the test file. Usage:

    python scripts/make_word_vectors.py data/fine_foods/train.csv review \
        data/fine_foods/vectors_50d.txt --dim 50 --words 3000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    """Parses arguments, learns the vectors and writes the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="CSV or Parquet file of training rows")
    parser.add_argument("column", help="the text column")
    parser.add_argument("out", help="GloVe-format output file")
    parser.add_argument("--dim", type=int, default=50, help="vector size (default 50)")
    parser.add_argument("--words", type=int, default=3000, help="most frequent words kept (default 3000)")
    parser.add_argument("--window", type=int, default=4, help="context window each side (default 4)")
    args = parser.parse_args(argv)

    from kerasflow.heavy import import_tensorflow

    import_tensorflow()
    from kerasflow.data.load import load_frame
    from kerasflow.features.text import fit_word_vectors, save_word_vectors, text_series

    frame = load_frame(args.source)
    words, vectors = fit_word_vectors(text_series(frame, args.column), dim=args.dim, words=args.words,
                                      window=args.window)
    path = save_word_vectors(words, vectors, args.out)
    print(f"wrote {path}: {len(words)} words x {args.dim} dims from {len(frame)} rows of {args.source}")


if __name__ == "__main__":
    main()
