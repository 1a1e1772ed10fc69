"""Attacks replayed across the app: headers, keys, tokens, sessions, rate limits, bad input."""
