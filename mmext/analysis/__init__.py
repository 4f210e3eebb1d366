# Copyright (c) mmext contributors. All rights reserved.
from .alignment import (TWO_STREAM_SIDES, build_model_and_loader,
                        collect_sides, model_taps, run_alignment,
                        write_alignment)
from .alignment_plots import (heatmap_figure, per_layer_figure, plot_alignment,
                              side_labels, texts_outside)
from .collect import collect_representations
from .measurement import (input_differences, measurement_loader_cfg,
                          sample_digests)
from .representations import (POOLINGS, Tap, default_taps,
                              flatten_layer_outputs, has_cls_token, parse_taps,
                              pool, pooling_kind, record_layers, side_names)

__all__ = [
    'Tap', 'parse_taps', 'default_taps', 'pool', 'pooling_kind',
    'has_cls_token', 'POOLINGS', 'record_layers', 'collect_representations',
    'build_model_and_loader', 'model_taps', 'run_alignment', 'write_alignment',
    'plot_alignment', 'heatmap_figure', 'per_layer_figure', 'side_labels',
    'texts_outside', 'collect_sides', 'flatten_layer_outputs', 'side_names',
    'TWO_STREAM_SIDES', 'measurement_loader_cfg', 'sample_digests',
    'input_differences'
]
from .compare import Table, compare_runs  # noqa: E402
from .compare_write import write_tables  # noqa: E402
from .runs import Run, RunError, discover_runs, load_run, load_study  # noqa

__all__ += [
    'Run', 'RunError', 'discover_runs', 'load_run', 'load_study', 'Table',
    'compare_runs', 'write_tables'
]
