"""Offline evaluation, kept out of the serving path: the time-split evaluation of generated
data (``evaluation``), the Last.fm loader (``lastfm``) and the real-data protocol behind
EVALUATION.md (``protocol`` -> ``splits`` -> ``fitting`` / ``ranking`` / ``groups`` / ``cold``
-> ``run`` -> ``report``). Dev-only dependencies (``implicit``) are imported inside the one
function that needs them, so that importing this package costs the runtime nothing."""
