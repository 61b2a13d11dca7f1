"""Dataset utility: does a published version teach a model what users prefer?

- ``bradley_terry``: a light pairwise reward model over hashed text features (CPU, seconds);
- ``utility``: train it on a version's train split and measure it on held-out pairs, the
  explicit A/B choices among them and, on simulated traffic, the hidden ground truth, with
  ablations per signal.
"""
