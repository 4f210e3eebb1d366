# Copyright (c) mmext contributors. All rights reserved.
from .alignment import (build_model_and_loader, model_taps, plot_alignment,
                        run_alignment, write_alignment)
from .representations import (Tap, collect_representations, default_taps,
                              parse_taps, pool, record_layers)

__all__ = [
    'Tap', 'parse_taps', 'default_taps', 'pool', 'record_layers',
    'collect_representations', 'build_model_and_loader', 'model_taps',
    'run_alignment', 'write_alignment', 'plot_alignment'
]
