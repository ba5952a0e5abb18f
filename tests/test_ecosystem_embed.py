"""The offline embedder gives unit vectors whose similarity follows topic."""

from __future__ import annotations

import numpy as np

from breedlab.ecosystem.embed import DIMENSIONS, shared_embedder


def test_embeddings_are_unit_vectors_and_topical():
    embedder = shared_embedder()
    vectors = embedder.embed(["def parse(args): return args.split()", "import os\nprint(os.getcwd())",
                              "The patient presented with fever and a rash."])
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, DIMENSIONS)
