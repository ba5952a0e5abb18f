"""Measuring models: language-model scores now; frozen suites, fitness and decisions build on these."""
