# Copyright (c) mmext contributors. All rights reserved.
"""Safe checkpoint loading: mmengine checkpoints load with weights_only=True,
anything else a pickle could run is refused before it runs."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint

from mmext.utils import (CorruptCheckpointError, UnsafeCheckpointError,
                         safe_torch_load)


class _WritesAFile:
    """A pickle payload: unpickling it would create ``self.path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'pwned'
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _WritesAFile(marker)}, ckpt)
    with pytest.raises(UnsafeCheckpointError) as e:
        safe_torch_load(str(ckpt))
    assert 'system' in str(e.value)  # the offending global is named
    assert len(str(e.value).splitlines()) == 1
    assert not marker.exists()
    # mmengine's own loader path (load_from / resume / Pretrained) too
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(1, 1), str(ckpt))
    assert not marker.exists()
    # the payload really is live: plain pickle would have run it
    pickle.loads(pickle.dumps(_WritesAFile(marker)))
    assert marker.exists()


def test_mmengine_globals_are_allowlisted(tmp_path):
    buf = HistoryBuffer()
    buf.update(1.5)
    state = {
        'meta': {
            'seed': np.int64(3),
            'lr': np.float64(0.1)
        },
        'message_hub': {
            'log_scalars': {
                'loss': buf
            }
        },
        'arr': np.arange(6, dtype=np.float32).reshape(2, 3),
        'state_dict': OrderedDict(w=torch.ones(2)),
    }
    path = tmp_path / 'ok.pth'
    torch.save(state, path)
    out = safe_torch_load(str(path))
    assert out['meta']['seed'] == 3
    assert out['message_hub']['log_scalars']['loss'].current() == 1.5
    np.testing.assert_array_equal(out['arr'], state['arr'])


@pytest.mark.parametrize('zipfile', [True, False])
def test_plain_state_dict_loads(tmp_path, zipfile):
    """torchvision / timm / mmpretrain downloads are plain state dicts."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / 'plain.pth'
    torch.save(
        model.state_dict(), path, _use_new_zipfile_serialization=zipfile)
    other = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_checkpoint(other, str(path), strict=True)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_one_line_error(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.randn(1000)}, good)
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CorruptCheckpointError) as e:
        safe_torch_load(str(bad))
    assert 'truncated.pth' in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    junk = tmp_path / 'junk.pth'
    junk.write_text('not a checkpoint at all')
    with pytest.raises(CorruptCheckpointError):
        safe_torch_load(str(junk))
