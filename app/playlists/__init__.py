"""The playlist service: the one place the JSON API and the pages get a group playlist from.

route -> ``service.serve`` (A/B arm) -> ``build`` (members from the database, tracks from the
recommender) -> ``record`` (prediction row and log line). ``errors`` holds the only exceptions
the callers translate.
"""
