"""Shared test helpers: small catalogues (`catalogue`), a tiny BEIR directory
(`beir_fixture`), and running the real service (`service`: the `ltrr` command line,
index builds in a subprocess, Serve's view of the deployed app)."""
