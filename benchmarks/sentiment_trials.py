"""Sentiment trials that did not become presets, kept so their figures can be rerun.

Each trial changes one thing in the quick preset and trains it with several seeds:

- `max-pool`: `ModelConfig(pooling="max")`, a max over the BiLSTM's steps in place
  of its last state as the sentence vector.
- `word-vectors`: skip-gram vectors (negative sampling) trained on the data folder's
  English text, the SST-2 training sentences and the English side of Tatoeba,
  initialise the embedding.

Run: python benchmarks/sentiment_trials.py --trial word-vectors --seeds 1234 1 2
(about 4 minutes on 2 cores). Prints one line per seed; the figures of the runs
made so far are in benchmarks/results/sentiment.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("sentiment_trials")


def english_corpus(data_dir: Path) -> list[str]:
    """SST-2 training sentences and the distinct English sentences of Tatoeba."""
    sst = data_dir / "sentiment" / "sst2_sentence_level" / "stsa.binary.train"
    # Each line is "<label> <sentence>".
    sentences = [
        line[2:].strip() for line in sst.read_text(encoding="utf-8").splitlines()
    ]
    tatoeba = data_dir / "translation" / "spa-eng" / "spa.txt"
    english = {
        line.split("\t")[0] for line in tatoeba.read_text(encoding="utf-8").splitlines()
    }
    return sentences + sorted(english)


def skipgram_vectors(tokenizer, texts, dim, window=3, negatives=4, epochs=3, seed=0):
    """Skip-gram word vectors with negative sampling, one row per tokenizer id."""
    import keras

    ids = [np.array([i for i in tokenizer.encode(t) if i > 1], np.int64) for t in texts]
    counts = np.bincount(np.concatenate(ids), minlength=len(tokenizer)).astype(float)
    noise = counts**0.75 / (counts**0.75).sum()
    pairs = []
    for sentence in ids:
        for offset in range(1, window + 1):
            if len(sentence) > offset:
                pairs.append(np.stack([sentence[:-offset], sentence[offset:]], 1))
                pairs.append(np.stack([sentence[offset:], sentence[:-offset]], 1))
    pairs = np.concatenate(pairs)
    rng = np.random.default_rng(seed)
    rng.shuffle(pairs)
    logger.info(
        "%d sentences, %d in-vocabulary tokens, %d positive pairs",
        len(texts),
        sum(len(s) for s in ids),
        len(pairs),
    )
    keras.utils.set_random_seed(seed)
    centre = keras.Input((), dtype="int64")
    context = keras.Input((1 + negatives,), dtype="int64")
    scale = 0.5 / dim
    centre_vectors = keras.layers.Embedding(
        len(tokenizer),
        dim,
        embeddings_initializer=keras.initializers.RandomUniform(-scale, scale),
    )
    context_vectors = keras.layers.Embedding(
        len(tokenizer), dim, embeddings_initializer="zeros"
    )
    logits = keras.ops.einsum(
        "bd,bkd->bk", centre_vectors(centre), context_vectors(context)
    )
    model = keras.Model([centre, context], logits)
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy(from_logits=True)
    )
    sampled = rng.choice(len(tokenizer), size=(len(pairs), negatives), p=noise)
    targets = np.zeros((len(pairs), 1 + negatives), np.float32)
    targets[:, 0] = 1.0
    model.fit(
        [pairs[:, 0], np.concatenate([pairs[:, 1:2], sampled], 1)],
        targets,
        batch_size=4096,
        epochs=epochs,
        verbose=2,
    )
    vectors = np.asarray(centre_vectors.embeddings)
    # The spread of Keras' default uniform(-0.05, 0.05) initialiser, so that the
    # classifier trains with the learning rate it was tuned for.
    return (vectors / (vectors.std() + 1e-8) * 0.029).astype(np.float32)


def word_vector_builder(original, vectors):
    def build_model(vocab_size, num_classes, config):
        model = original(vocab_size, num_classes, config)
        model.get_layer("embedding").embeddings.assign(vectors)
        return model

    return build_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", required=True, choices=["max-pool", "word-vectors"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--data", default=os.environ.get("RNNKIT_DATA"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data:
        parser.error("the data folder is needed: --data DIR or RNNKIT_DATA")

    from rnnkit.apps.sentiment import model as sentiment_model
    from rnnkit.apps.sentiment.train import get_preset, load_training_data, train

    from rnnkit.edge.text import WordTokenizer

    preset = get_preset("quick")
    original = sentiment_model.build_model
    if args.trial == "max-pool":
        preset = preset.replace(pooling="max")
    else:
        started = time.time()
        # The same vocabulary `train` builds, so the rows line up with its ids.
        train_set, _ = load_training_data(preset, args.data)
        tokenizer = WordTokenizer.fit(
            train_set.texts, preset.vocab_size, preset.min_count, preset.max_length
        )
        vectors = skipgram_vectors(
            tokenizer, english_corpus(Path(args.data)), preset.model.embedding_dim
        )
        logger.info("word vectors in %.0f s", time.time() - started)
        sentiment_model.build_model = word_vector_builder(original, vectors)
    try:
        with tempfile.TemporaryDirectory() as work:
            for seed in args.seeds:
                metrics = train(
                    preset.replace(seed=seed),
                    Path(work) / str(seed),
                    args.data,
                    verbose=0,
                )
                print(
                    json.dumps(
                        {
                            "trial": args.trial,
                            "seed": seed,
                            "dev_accuracy": metrics["accuracy"],
                        }
                    )
                )
    finally:
        sentiment_model.build_model = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
