"""A browser page to try trained models on photos: `scripts/app.py`."""
