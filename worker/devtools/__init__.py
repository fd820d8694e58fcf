"""Not the product: embedded stack, ``log-ingest dev``, event and load generators, the bench.

The product's modules never import this package; ``worker.cli`` imports it lazily."""
