"""Reflector sinks: they turn each source's object stream into rendered blocks in the store
(parse → render → store, once per object version)."""
