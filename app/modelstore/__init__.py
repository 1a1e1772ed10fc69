"""Model versions on disk and in the database: the ``model_versions`` registry (which versions
exist, which one serves) and the ``flask model`` CLI that trains from the database, evaluates,
lists and activates them. The recommender itself (``app/recommender/``) knows neither Flask nor
the database; this package is where its artifacts meet them."""
