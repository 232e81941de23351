"""Datasets in and out of ltrr's catalogue model (`core.model`): the built-in music-demo
generator, BEIR directories and the Spotify catalogue, all resolved from a spec string
by `ingest.registry.load_dataset`. Imports only `core`."""
