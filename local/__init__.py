"""Local mode: the whole pipeline on one machine against a moto server (`make dev`)."""
