# Copyright (c) mmext contributors. All rights reserved.
from .alignment import (TWO_STREAM_SIDES, build_model_and_loader,
                        collect_sides, model_taps, plot_alignment,
                        run_alignment, write_alignment)
from .representations import (Tap, collect_representations, default_taps,
                              flatten_layer_outputs, parse_taps, pool,
                              record_layers, side_names)

__all__ = [
    'Tap', 'parse_taps', 'default_taps', 'pool', 'record_layers',
    'collect_representations', 'build_model_and_loader', 'model_taps',
    'run_alignment', 'write_alignment', 'plot_alignment', 'collect_sides',
    'flatten_layer_outputs', 'side_names', 'TWO_STREAM_SIDES'
]
