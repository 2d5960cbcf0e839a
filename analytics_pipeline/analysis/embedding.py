"""Texts as vectors for the findings search: offline by hashing, or through the OpenAI embeddings API.

Why hashing offline: a fitted vocabulary or IDF table would have to be stored and would drift as findings arrive,
so a finding indexed last year and a question asked today could be vectors of two different models. A hashing
vectorizer has no state: the same text gives the same vector on any machine, at any time. Word 1-2 grams match
the words of a question; character 3-5 grams inside words match their other forms ("drop" and "dropped",
"Tuesday" and "Tue"). Each vector records the model that made it; vectors of two models are never compared.
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

OFFLINE_MODEL = "offline-hashing-v1"  # change the name whenever anything below changes what a text's vector is
OFFLINE_DIMENSIONS = 1024
EMBEDDING_MODEL_ENV = "ANALYTICS_EMBEDDING_MODEL"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
OPENAI_BATCH = 512  # texts per embeddings request (the API takes up to 2,048)
# Words every question has and no finding is told apart by. Not scikit-learn's English list: it drops "down",
# "up", "below" and "above", which are what a question about a drop or a spike is made of.
STOP_WORDS = sorted(
    "a an and are as at be by can could did do does for from had has have how i in is it me of on or our show "
    "tell than that the their there this to us was we were what when where which who why will with would you".split()
)

_WORDS = HashingVectorizer(
    n_features=OFFLINE_DIMENSIONS, ngram_range=(1, 2), stop_words=STOP_WORDS, alternate_sign=False, norm="l2"
)
_CHARACTERS = HashingVectorizer(
    n_features=OFFLINE_DIMENSIONS, analyzer="char_wb", ngram_range=(3, 5), alternate_sign=False, norm="l2"
)


def openai_model() -> str:
    """The OpenAI embeddings model used when OPENAI_API_KEY is set (ANALYTICS_EMBEDDING_MODEL)."""
    return os.environ.get(EMBEDDING_MODEL_ENV) or DEFAULT_OPENAI_MODEL


def offline(texts: list[str]) -> np.ndarray:
    """One unit vector per text: its word and character n-grams hashed into the same space, equally weighted."""
    if not texts:  # scikit-learn's hasher refuses an empty list
        return np.zeros((0, OFFLINE_DIMENSIONS))
    summed = (_WORDS.transform(texts) + _CHARACTERS.transform(texts)).toarray()
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return summed / np.where(norms == 0, 1, norms)


def through_openai(client, model: str, texts: list[str], timeout_seconds: float) -> np.ndarray:
    """The texts embedded by `model` through an OpenAI client (which retries 429s, 5xx and timeouts), in order;
    `timeout_seconds` per request."""
    vectors = []
    for start in range(0, len(texts), OPENAI_BATCH):
        batch = texts[start : start + OPENAI_BATCH]
        response = client.embeddings.create(model=model, input=batch, timeout=timeout_seconds)
        vectors += [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
    return np.array(vectors, dtype=float)
