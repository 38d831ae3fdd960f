"""The paper's datasets, registered under dlib's `dataset.name`.

Modules: `registry` (name -> dataset; the only place names are listed),
`sprites` (dSprites rasteriser, colored sprites and its variants), `room`
(3D Object-in-Room: DeepMind's 3dshapes.h5 reader and a procedural renderer),
`cache` (verified on-disk cache of generated assets), `aligned` (arrays
TensorFlow adopts without a copy), `pipeline` (batched, parallel input for
dlib's trainer).
"""
