# Copyright (c) mmext contributors. All rights reserved.
"""tools/dataset_converters/conceptual_captions.py download / summary
against a local HTTP server, then the data set over its output (two
subprocesses: each pays the mmext import)."""
import csv
import json

from mmext.datasets import ConceptualCaptions
from mmext.testing.multimodal import local_image_server
from ..conftest import ROOT, run_tool

TOOL = ROOT / 'tools' / 'dataset_converters' / 'conceptual_captions.py'


def test_cc_download_cli(tmp_path):
    data = tmp_path / 'data' / 'conceptual_captions'
    data.mkdir(parents=True)
    tsv = data / 'Validation_GCC-1.1.0-Validation.tsv'
    with local_image_server(slow=1.0) as server:
        paths = [
            '/img/1.png', '/img/2.png', '/missing/3.png', '/corrupt/4.jpg',
            '/slow/5.png', '/img/6.png'
        ]
        tsv.write_text(''.join(f'caption {i}\t{server.url(p)}\n'
                               for i, p in enumerate(paths, 1)))
        proc = run_tool([
            TOOL, 'download', tsv, '--timeout', '0.3', '--retries', '0',
            '--workers', '3', '--size', '32', '--limit', '5'
        ],
                        cwd=tmp_path,
                        timeout=120)
        assert '3 images in' not in proc.stdout
        assert '2 images in' in proc.stdout
        log = data / 'Validation_GCC-1.1.0-Validation.downloads.csv'
        with open(log, newline='') as f:
            rows = list(csv.DictReader(f))
        assert [r['status'] for r in rows
                ] == ['saved', 'saved', 'http_error', 'not_image', 'timeout']
        assert server.hits.get('/img/6.png') is None  # --limit 5
    # the resume logic is tested in-process (test_conceptual_captions.py)
    proc = run_tool([TOOL, 'summary', tsv], cwd=tmp_path)
    assert json.loads(proc.stdout) == {
        'saved': 2,
        'http_error': 1,
        'not_image': 1,
        'timeout': 1,
        'not attempted': 1
    }
    ds = ConceptualCaptions(str(data), split='val')
    assert len(ds) == 2 and ds.num_missing == 4
    assert [ds.get_data_info(i)['text']
            for i in range(2)] == ['caption 1', 'caption 2']
