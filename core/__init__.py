"""ltrr's foundation: the records and data model every other package shares.

Nothing here imports another ltrr package, Ray, torch, the JVM or faiss, so anything
may import it cheaply:

- `core.errors`: the error types that map to clear 4xx answers and `error:` lines;
- `core.model`: items, schemas, query sets and datasets (the catalogue model);
- `core.records`: candidates with their provenance, request and event records;
- `core.events`: feedback event types and what each is worth (the one table);
- `core.text`: text normalisation shared by every string-matching component;
- `core.paths`: the state directory's layout, default ports and addresses;
- `core.env`: process environment that entry points set up (never done on import).
"""
