"""The TensorFlow "NMT with attention" tutorial's recipe, on this repository's split.

This is the calibration run the translation issue asks for: what a new user gets by
following the tutorial, measured on the same test sentences as rnnkit's models.
The recipe, rebuilt here in Keras 3 from its description (not its code):

- text: Unicode NFKD, lower case, only a-z, space and . ? ! , ¿ kept, spaces
  around punctuation, [START]/[END] markers; word vocabularies of 5,000 per side
  (TextVectorization, fitted on the training split);
- encoder: Embedding 256 -> bidirectional GRU 256 (the two directions summed);
- decoder: Embedding 256 -> GRU 256 -> cross attention (one-head
  MultiHeadAttention over the encoder outputs, residual, LayerNormalization) ->
  Dense 5,000 logits;
- training: teacher forcing, masked cross entropy, Adam (default settings),
  batch 64, whole passes over the shuffled training pairs;
- decoding: greedy, at most 50 tokens.

Its output is lower case without accents and with spaced punctuation; BLEU is
computed on it after re-attaching punctuation and capitalising the first letter
(raw output is reported too), against the cased references, sacrebleu defaults.

    python benchmarks/translation_baseline.py --epochs 4 --sentences 500
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402

logger = logging.getLogger("translation_baseline")

UNITS = 256
VOCABULARY = 5000
MAX_DECODE = 50


def standardize(text: str) -> str:
    """The tutorial's text normalisation, in plain Python."""
    text = unicodedata.normalize("NFKD", text).lower()
    text = re.sub(r"[^ a-z.?!,¿]", "", text)
    text = re.sub(r"[.?!,¿]", r" \g<0> ", text)
    return "[START] " + " ".join(text.split()) + " [END]"


def detokenize(words: list[str]) -> str:
    """Turns 'he has a bad [UNK] .' into 'He has a bad [UNK].'."""
    text = " ".join(words)
    text = re.sub(r" ([.?!,])", r"\1", text)
    text = re.sub(r"¿ ", "¿", text)
    return text[:1].upper() + text[1:]


def build():
    import keras

    source = keras.Input((None,), dtype="int64", name="source")
    target_in = keras.Input((None,), dtype="int64", name="target_in")
    x = keras.layers.Embedding(VOCABULARY, UNITS, mask_zero=True)(source)
    context = keras.layers.Bidirectional(
        keras.layers.GRU(UNITS, return_sequences=True), merge_mode="sum"
    )(x)
    y = keras.layers.Embedding(VOCABULARY, UNITS, mask_zero=True)(target_in)
    y = keras.layers.GRU(UNITS, return_sequences=True)(y)
    attended = keras.layers.MultiHeadAttention(num_heads=1, key_dim=UNITS)(
        query=y, value=context
    )
    y = keras.layers.LayerNormalization()(keras.layers.Add()([y, attended]))
    logits = keras.layers.Dense(VOCABULARY)(y)
    return keras.Model([source, target_in], logits)


def masked_loss(y_true, y_pred):
    import keras

    loss = keras.losses.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=True
    )
    mask = keras.ops.cast(keras.ops.not_equal(y_true, 0), loss.dtype)
    return keras.ops.sum(loss * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)


def greedy(model, source_ids, start_id, end_id, vocabulary, batch=100):
    """Greedy decoding; re-runs the (causal) decoder on the growing prefix."""
    import numpy as np

    outputs = []
    for first in range(0, len(source_ids), batch):
        src = source_ids[first : first + batch]
        prefix = np.full((len(src), 1), start_id, np.int64)
        done = np.zeros(len(src), bool)
        for _ in range(MAX_DECODE):
            logits = model.predict_on_batch([src, prefix])
            nxt = np.argmax(np.asarray(logits)[:, -1, :], axis=-1).astype(np.int64)
            nxt[done] = 0
            prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
            done |= nxt == end_id
            if done.all():
                break
        for row in prefix[:, 1:]:
            words = []
            for token in row:
                if token in (0, end_id):
                    break
                words.append(vocabulary[token])
            outputs.append(words)
    return outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--direction", default="spa-eng", choices=["spa-eng"])
    parser.add_argument(
        "--max-train-pairs", type=int, default=None, help="smoke runs only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import keras
    import numpy as np
    import sacrebleu
    import tensorflow as tf
    from rnnkit.apps.translation.data import load_split
    from translation_bench import _sample

    keras.utils.set_random_seed(0)
    split = load_split(args.direction)
    train_pairs = split["train"][: args.max_train_pairs]
    test_pairs = _sample(split["test"], args.sentences)
    sources = [standardize(p.source) for p in train_pairs]
    targets = [standardize(p.target) for p in train_pairs]

    def vectorizer(texts):
        layer = keras.layers.TextVectorization(
            max_tokens=VOCABULARY, standardize=None, ragged=True
        )
        layer.adapt(tf.constant(texts))
        return layer

    source_vectorizer = vectorizer(sources)
    target_vectorizer = vectorizer(targets)
    vocabulary = target_vectorizer.get_vocabulary()
    start_id, end_id = vocabulary.index("[START]"), vocabulary.index("[END]")

    def to_batches(src_texts, tgt_texts):
        src = source_vectorizer(tf.constant(src_texts))
        tgt = target_vectorizer(tf.constant(tgt_texts))
        data = tf.data.Dataset.from_tensor_slices((src, tgt))
        data = data.shuffle(len(src_texts), seed=0, reshuffle_each_iteration=True)
        data = data.map(lambda s, t: ((s, t[:-1]), t[1:]))
        return data.padded_batch(64).prefetch(2)

    train_data = to_batches(sources, targets)
    valid = split["valid"][:2000]
    valid_data = to_batches(
        [standardize(p.source) for p in valid], [standardize(p.target) for p in valid]
    )
    model = build()
    model.compile(optimizer="adam", loss=masked_loss)

    test_src = source_vectorizer(
        tf.constant([standardize(p.source) for p in test_pairs])
    ).to_tensor()
    test_src = np.asarray(test_src, np.int64)
    references = [p.target for p in test_pairs]
    rows = []
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        history = model.fit(train_data, validation_data=valid_data, epochs=1, verbose=2)
        decoded = greedy(model, test_src, start_id, end_id, vocabulary)
        raw = [" ".join(words) for words in decoded]
        clean = [detokenize(words) for words in decoded]
        unknown = sum(w == "[UNK]" for words in decoded for w in words)
        rows.append(
            {
                "epoch": epoch,
                "minutes": (time.time() - started) / 60,
                "val_loss": history.history["val_loss"][-1],
                "bleu": sacrebleu.corpus_bleu(clean, [references]).score,
                "chrf": sacrebleu.corpus_chrf(clean, [references]).score,
                "bleu_raw": sacrebleu.corpus_bleu(raw, [references]).score,
                "unknown": unknown,
                "example": clean[:3],
            }
        )
        logger.info("epoch %d: %s", epoch, rows[-1])

    lines = [
        f"The recipe of the TensorFlow NMT-with-attention tutorial ({UNITS} units, "
        f"word vocabularies of {VOCABULARY}, greedy decoding; see the script's "
        f"docstring), trained on this repo's spa.txt train split ({len(train_pairs)} "
        f"pairs) and scored on the same {len(test_pairs)} test pairs as the rnnkit rows "
        "of the translation section. BLEU: sacrebleu corpus BLEU, cased, 13a, on the "
        "output with punctuation re-attached and the first letter capitalised; raw: on "
        "the lower-case spaced output as it comes.",
        "",
        "| epoch | minutes | val loss | BLEU | chrF | BLEU raw | [UNK] in output |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['epoch']} | {row['minutes']:.1f} | {row['val_loss']:.3f} | "
            f"{row['bleu']:.2f} | {row['chrf']:.2f} | {row['bleu_raw']:.2f} | "
            f"{row['unknown']} |"
        )
    lines += ["", "First test translations after the last epoch:", ""]
    lines += [
        f"- {pair.source} -> {text} (reference: {pair.target})"
        for pair, text in zip(test_pairs[:3], rows[-1]["example"], strict=True)
    ]
    path = write_section(
        "translation_baseline",
        "Translation: TensorFlow tutorial recipe on the same split",
        "\n".join(lines),
    )
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
