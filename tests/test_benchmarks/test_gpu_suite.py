# Copyright (c) mmext contributors. All rights reserved.
"""benchmarks/gpu_suite.py --smoke: every row runs on CPU at tiny sizes, so
the GPU suite is known to work before a GPU ever sees it."""
import json

from ..conftest import ROOT, run_tool

SUITE = ROOT / 'benchmarks' / 'gpu_suite.py'

#: (system, variant) of every row the suite must print, in order
EXPECTED = [
    ('ViLBERT pretrain step', 'fp32'),
    ('ViLBERT pretrain step', 'amp bf16'),
    ('TRAR vs ViT train', 'ViT-B/16 (mmpre)'),
    ('TRAR vs ViT train', 'TRAR-ViT-B/16'),
    ('TRAR vs ViT train', 'ViT-B/16 (mmpre)'),
    ('TRAR vs ViT train', 'TRAR-ViT-B/16'),
    ('Flowers ViT-B/16 fine-tune', 'mmext config'),
    ('Flowers ViT-B/16 fine-tune', 'mmpretrain'),
    ('R2Gen decode', 'mmext'),
    ('BUTD extraction', 'fp32'),
    ('BUTD extraction', 'bf16 convs'),
]


def test_smoke_prints_every_row_with_positive_numbers(tmp_path):
    out = tmp_path / 'suite.json'
    proc = run_tool([SUITE, '--smoke', '--device', 'cpu', '--json', out],
                    cwd=tmp_path,
                    timeout=300)
    result = json.loads(out.read_text())
    assert result['meta']['device'] == 'cpu' and result['meta']['smoke']
    rows = result['rows']
    assert [(r['system'], r['variant']) for r in rows] == EXPECTED
    for row in rows:
        for key in ('seconds', 'throughput', 'peak_mb'):
            assert row[key] > 0, (row['system'], row['variant'], key)
        assert abs(row['throughput'] * row['seconds'] -
                   round(row['throughput'] * row['seconds'])) < 1e-6
    # TRAR rows at both real sizes, each TRAR row compared with its ViT
    sizes = [r['size'].split(',')[0] for r in rows[2:6]]
    assert sizes == ['224 px', '224 px', '384 px', '384 px']
    for i in (3, 5, 6, 10):
        assert rows[i]['ratio'] > 0 and rows[i]['ratio_to']
    # the printed table has every row and says which memory it reports
    table = proc.stdout
    for system, variant in EXPECTED:
        assert any(system in line and variant in line
                   for line in table.splitlines()), (system, variant)
    assert 'process peak RSS' in table and 'load average' in table
