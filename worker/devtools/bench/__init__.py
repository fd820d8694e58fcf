"""``log-ingest bench``: the worker beside COPY, a raw pipe and the libraries' floor."""
