"""The paper's datasets, registered under dlib's `dataset.name`.

Modules: `registry` (name -> dataset; the only place names are listed),
`data_dir` (dlib's data folder and the real files looked for in it),
`dsprites_raster` (dSprites' factor grid and the mask rasteriser),
`dsprites_masks` (cached packed masks, generated or read from the real file),
`colored_sprites` (colored sprites and small colored sprites), `holdout` (the
held-out region and its train/test datasets), `room_factors` (3dshapes'
factor structure), `room_renderer` (the procedural 3dshapes look-alike),
`room` (3D Object-in-Room: DeepMind's 3dshapes.h5 reader and the datasets),
`cache` (verified on-disk cache of generated assets), `aligned` (arrays
TensorFlow adopts without a copy), `pipeline` (batched, parallel input for
dlib's trainer).
"""
from sbd_plugin import dlib_bridge

# The dataset modules subclass dlib's classes, and activating imports them all
# (to register their gin configurables): adapt dlib before any of them starts
# loading, whichever is imported first.
dlib_bridge.activate()
