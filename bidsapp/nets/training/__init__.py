"""Training of the shipped networks on simulated data (console script ``dcequant-train``).

The only part of :mod:`bidsapp.nets` that imports :mod:`bidsapp.simulate`. Each network
registers a sub-command in :data:`bidsapp.nets.training.cli.TRAINERS`.
"""
