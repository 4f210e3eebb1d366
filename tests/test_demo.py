# Copyright (c) mmext contributors. All rights reserved.
"""`make demo` end to end, at a smaller size: generated Flowers data with
planted leaks -> find_leakage.py -> train 102 no-leak -> train 17 -> test,
all stages in the demo's one process."""
import json
import re

from .conftest import ROOT, run_tool


def test_flowers_demo_small(tmp_path):
    data, work = tmp_path / 'data', tmp_path / 'work'
    proc = run_tool([
        ROOT / 'tools/misc/flowers_demo.py', '--data-root', data, '--work-dir',
        work, '--size', 32, '--per-class-17', 8, '--per-class-102', 3,
        '--planted', 3, '--epochs-102', 1, '--epochs-17', 12
    ],
                    cwd=tmp_path,
                    timeout=900)
    out = proc.stdout
    assert 'leaked: found 3 of 3 planted\n' in out  # no false matches
    top1 = float(re.search(r'test accuracy: ([\d.]+)% top-1 on 34 ', out)[1])
    assert top1 > 2 * 100 / 17  # well above chance (5.9%)

    # the exclude file lists exactly the planted copies, and stage 1
    # trained without them
    summary = json.loads((work / 'summary.json').read_text())
    assert summary['found'] == summary['planted'] == 3
    assert summary['false_matches'] == 0
    exclude = (data / 'leakage' / 'exclude.txt').read_text().splitlines()
    listed = [x for x in exclude if x and not x.startswith('#')]
    assert len(listed) == 3 and all(x.startswith('jpg/image_') for x in listed)
    log = (work / 'stage1.log').read_text()
    assert 'ExcludeImages: dropped 3 of 102 images of Flowers102' in log
    # stage 2 started from stage 1's backbone
    assert 'stage1_flowers102_noleak/epoch_1.pth' in (
        work / 'stage2_flowers17.py').read_text()

    # every stage's tool command is printed (so it can be re-run by hand)
    commands = [line for line in out.splitlines() if line.startswith('$ ')]
    assert [c.split()[2].split('tools/')[-1] for c in commands
            ] == ['dedup/find_leakage.py', 'train.py', 'train.py', 'test.py']
    assert 'stage2_flowers17.py' in commands[-1]
    # in one process, each runner logged into its own work dir: the second
    # did not take over the first's logger (mmengine keys it by run name)
    runs = {
        d: list((work / d).glob('*/*.log'))
        for d in ('stage1_flowers102_noleak', 'stage2_flowers17', 'test')
    }
    assert all(len(logs) == 1 for logs in runs.values()), runs
    stage1, stage2, test = (logs[0].read_text() for logs in runs.values())
    assert 'ExcludeImages: dropped 3' in stage1 and 'ExcludeImages' not in \
        stage2 + test
    assert 'Epoch(train) [12]' in stage2 and 'Epoch(train) [12]' not in stage1
    assert 'Epoch(test)' in test and 'Epoch(test)' not in stage2
