"""Command-line entry points: ``dcequant`` (:mod:`.run`), ``dcequant-demo`` (:mod:`.demo`)."""
