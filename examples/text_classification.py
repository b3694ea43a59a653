"""Sentiment of short texts: Embedding(vocab, 50) + LSTM(32) + sigmoid.

Texts become integer ids with a plain-Python tokenizer (``fastlstm.data.
Tokenizer``; id 0 is padding, 1 is out-of-vocabulary), are padded with
``pad_sequences`` (Keras semantics: zeros in front) and classified by an
embedding + LSTM(32) with one sigmoid output trained on the binary
log-loss. Padding is masked: the LSTM runs over each text's real tokens
only. 80/20 split, the 20% also passed as ``validation_data`` so each epoch
reports the validation loss; the metric is test accuracy.

The corpus is generated here (reproducibly) from templates, including
negations ("was not good"), so word order matters, and 5% flipped labels,
so about 95% is the best achievable test accuracy.

    python examples/text_classification.py [--epochs N]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs.
"""

import argparse
import os
import time

import numpy as np

from fastlstm import LSTMClassifier, pad_sequences
from fastlstm.data import Tokenizer

POSITIVE = ["good", "great", "excellent", "wonderful", "lovely", "enjoyable", "brilliant",
            "fun", "moving", "superb"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "dull", "poor", "horrible", "weak",
            "tedious", "bland"]
SUBJECTS = ["the movie", "the film", "the plot", "the acting", "the story", "the ending",
            "the cast", "the music", "this show", "the script"]
OPENERS = ["", "honestly", "i thought", "overall", "to be fair", "in the end", "frankly"]
INTENSIFIERS = ["", "really", "very", "quite", "truly", "so"]


def make_corpus(n, rng):
    texts, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        negate = rng.random() < 0.3
        word = rng.choice(POSITIVE if positive != negate else NEGATIVE)
        parts = [rng.choice(OPENERS), rng.choice(SUBJECTS), "was",
                 "not" if negate else "", rng.choice(INTENSIFIERS), word]
        if rng.random() < 0.3:
            parts += ["and", "the", rng.choice(["pacing", "sound", "camera"]), "was",
                      rng.choice(["fine", "ok", "slow", "loud"])]
        texts.append(" ".join(p for p in parts if p) + rng.choice([".", "!", ""]))
        if rng.random() < 0.05:  # some reviewers are sarcastic: 5% label noise
            positive = not positive
        labels.append("positive" if positive else "negative")
    return texts, np.array(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 15)))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    texts, labels = make_corpus(2000, rng)
    split = int(0.8 * len(texts))
    tokenizer = Tokenizer().fit(texts[:split])  # vocabulary from training texts only
    ids = pad_sequences(tokenizer.transform(texts), maxlen=20)
    X_train, X_test = ids[:split], ids[split:]
    y_train, y_test = labels[:split], labels[split:]
    print(f"{len(texts)} texts, vocabulary {tokenizer.vocab_size_}, e.g. {texts[0]!r} -> "
          f"{ids[0].tolist()}")

    model = LSTMClassifier(embedding_dim=50, vocab_size=tokenizer.vocab_size_,
                           hidden_sizes=(32,), epochs=args.epochs, batch_size=32,
                           learning_rate=0.005, random_state=0, verbose=1)
    t0 = time.perf_counter()
    model.fit(X_train, y_train, validation_data=(X_test, y_test))
    seconds = time.perf_counter() - t0
    accuracy = model.score(X_test, y_test)
    print(f"test accuracy {accuracy:.3f} (fit {seconds:.2f}s, {model.n_iter_} epochs)")
    examples = ["the acting was not good", "honestly the plot was really superb"]
    proba = model.predict_proba(pad_sequences(tokenizer.transform(examples), maxlen=20))
    for text, p in zip(examples, proba[:, list(model.classes_).index("positive")]):
        print(f"  P(positive | {text!r}) = {p:.3f}")
    return {"accuracy": accuracy}


if __name__ == "__main__":
    main()
