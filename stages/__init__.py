"""One thin click command per pipeline stage: parse, call the library, write outputs."""
