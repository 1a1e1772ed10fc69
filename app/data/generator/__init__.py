"""Synthetic exports with a known ground truth: vocabulary, world, writers, ground truth."""
