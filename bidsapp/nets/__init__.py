"""Pretrained networks: inference only (arrays in, arrays out, no files).

Weights ship inside the package (``bidsapp/data/nets/<name>.pt``) as state dicts with a
JSON model card that records the architecture, the input contract, the training recipe and
command, the validation metrics and the weights' sha256 (:mod:`bidsapp.nets.weights`).
Nothing is downloaded or trained at import or run time; training lives in
:mod:`bidsapp.nets.training` (console script ``dcequant-train``), the only part of this
package that imports :mod:`bidsapp.simulate`.
"""
