"""Tests of the offline evaluation: the Last.fm loader, the real-data protocol, EVALUATION.md."""
