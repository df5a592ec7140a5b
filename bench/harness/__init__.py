"""The webhook benchmark's parts; ``bench/webhooks.py`` runs them (see bench/README.md)."""
