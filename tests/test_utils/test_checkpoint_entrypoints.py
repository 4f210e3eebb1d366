# Copyright (c) mmext contributors. All rights reserved.
"""Every way a checkpoint enters an mmext process goes through the safe
loader: the tools, resume, load_from, Pretrained init, URLs and the hub
cache; damaged files give one line naming the file; real checkpoints load."""
import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner import load_checkpoint

from mmext.apis import prepare_config
from mmext.testing import make_image_folder
from mmext.testing.pickles import (getattr_eval_chain, marker_code,
                                   splice_into_checkpoint)
from mmext.utils import (CheckpointMismatchError, CorruptCheckpointError,
                         UnsafeCheckpointError, safe_torch_load)
from ..conftest import ROOT, run_tool

TINY = ROOT / 'configs/tiny/resnet18_1xb8-scratch_tiny-64px.py'


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    """A checkpoint written by mmengine's runner for an mmext config, and a
    copy with the getattr -> eval chain spliced into it."""
    tmp = tmp_path_factory.mktemp('ckpt')
    make_image_folder(tmp / 'data/tiny', per_class=2, size=32)
    cfg = Config.fromfile(str(TINY))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(tmp / 'data/tiny')
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp / 'work')
    cfg.launcher = 'none'
    Runner.from_cfg(prepare_config(cfg)).train()
    good = tmp / 'work/epoch_1.pth'
    marker = tmp / 'PWNED'
    evil = splice_into_checkpoint(good, tmp / 'evil.pth', 'x',
                                  getattr_eval_chain(marker_code(marker)))
    return tmp, good, evil, marker


def test_real_checkpoints_load(real, tmp_path):
    tmp, good, _, _ = real
    ckpt = safe_torch_load(str(good))
    hub = ckpt['message_hub']
    assert hub['log_scalars']['train/loss'].current() > 0
    assert isinstance(hub['runtime_info']['eta'], np.floating)
    # a torchvision-style plain state dict (OrderedDict with _metadata)
    import torchvision
    sd = torchvision.models.resnet18().state_dict()
    torch.save(sd, tmp_path / 'tv.pth')
    out = safe_torch_load(str(tmp_path / 'tv.pth'))
    assert out._metadata == sd._metadata
    assert all(torch.equal(out[k], sd[k]) for k in sd)
    # legacy (pre-1.6) serialisation and a safetensors file
    torch.save(
        sd, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    assert torch.equal(
        safe_torch_load(str(tmp_path / 'legacy.pth'))['fc.weight'],
        sd['fc.weight'])
    from safetensors.torch import save_file
    save_file({'w': torch.arange(3.)}, tmp_path / 'x.safetensors')
    assert torch.equal(
        safe_torch_load(str(tmp_path / 'x.safetensors'))['w'],
        torch.arange(3.))


def test_spliced_checkpoint_runs_under_a_naive_allowlist(real):
    """Control: the spliced file is a working exploit."""
    from mmengine.logging import HistoryBuffer
    tmp, _, evil, marker = real
    core = np._core.multiarray
    naive = [
        HistoryBuffer, getattr, core._reconstruct, core.scalar, np.ndarray,
        np.dtype, *[
            getattr(np.dtypes, n)
            for n in dir(np.dtypes) if n.endswith('DType')
        ]
    ]
    with torch.serialization.safe_globals(naive):
        torch.load(str(evil), weights_only=True)
    assert marker.exists()
    marker.unlink()


def _cli_cases(tmp, evil, good):
    work = tmp / 'resume_work'
    work.mkdir(exist_ok=True)
    (work / 'last_checkpoint').write_text(str(evil))
    img = next((tmp / 'data/tiny/val').rglob('*.png'))
    r2gen = ROOT / 'configs/r2gen/r2gen_tiny_1xb4-scratch_tiny-iu-xray-64px.py'
    trar = (
        ROOT / 'configs/trar_vit' /
        'trar-vit-base-p16_8xb64-in21k-pre_flowers17.py')
    train = [
        'tools/train.py', TINY, '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp}/data/tiny',
        f'val_dataloader.dataset.data_root={tmp}/data/tiny',
        f'test_dataloader.dataset.data_root={tmp}/data/tiny'
    ]
    test = [
        'tools/test.py', TINY, evil, '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp}/data/tiny'
    ]
    return {
        'test.py':
        test,
        'train.py --resume PATH':
        train[:2] + ['--work-dir', tmp / 'w1', '--resume', evil] + train[2:],
        'train.py auto-resume':
        train[:2] + ['--work-dir', work, '--resume'] + train[2:],
        'train.py load_from':
        train + [f'load_from={evil}', f'work_dir={tmp}/w2'],
        'train.py init_cfg Pretrained':
        train + [
            'model.backbone.init_cfg.type=Pretrained',
            f'model.backbone.init_cfg.checkpoint={evil}', f'work_dir={tmp}/w3'
        ],
        'infer.py': ['tools/infer.py', img, TINY, evil],
        'report/generate.py': ['tools/report/generate.py', img, r2gen, evil],
        'convert_to_mmpretrain.py': [
            'tools/model_converters/convert_to_mmpretrain.py',
            'torchvision-resnet', evil, tmp / 'out.pth'
        ],
        'vis_trar_routing.py': [
            'tools/analysis_tools/vis_trar_routing.py', img, trar, evil,
            '--out', tmp / 'vis'
        ],
    }


def _empty_last_checkpoint_cases(tmp):
    """Two work dirs for ``--resume``: ``last_checkpoint`` empty, and naming a
    file that is not there."""
    cases = {}
    for name, text in (('empty', lambda work: '\n'),
                       ('gone', lambda work: str(work / 'gone.pth'))):
        work = tmp / f'last_checkpoint_{name}'
        work.mkdir(exist_ok=True)
        (work / 'last_checkpoint').write_text(text(work))
        cases[name] = [
            'tools/train.py', TINY, '--work-dir', work, '--resume',
            '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp}/data/tiny',
            f'val_dataloader.dataset.data_root={tmp}/data/tiny',
            f'test_dataloader.dataset.data_root={tmp}/data/tiny'
        ]
    return cases


def _refused(args):
    return run_tool(args, cwd=ROOT, check=False, timeout=300)


@pytest.fixture(scope='module')
def runs(tools_ahead, real):
    """Every tool run of the module, started together (two at a time)."""
    tmp, good, evil, _ = real
    tools = _cli_cases(tmp, evil, good)
    for name, args in tools.items():
        tools_ahead.start(name,
                          ['test_every_tool_refuses_the_spliced_checkpoint'],
                          _refused, args)
    for name, args in _empty_last_checkpoint_cases(tmp).items():
        tools_ahead.start(
            f'last_checkpoint_{name}',
            ['test_empty_last_checkpoint_fails_before_training'],
            run_tool,
            args,
            cwd=ROOT,
            check=False)
    return tools_ahead, list(tools)


def test_every_tool_refuses_the_spliced_checkpoint(real, runs):
    marker = real[3]
    runs, tools = runs
    procs = {name: runs[name] for name in tools}
    for name, proc in procs.items():
        last = (proc.stderr.strip().splitlines() or [''])[-1]
        assert proc.returncode != 0, name
        assert 'refused' in last and 'evil.pth' in last, f'{name}: {last}'
    assert not marker.exists()


@pytest.fixture
def http_server(real, tmp_path, monkeypatch):
    """A server on 127.0.0.1 serving the evil and the good checkpoint."""
    tmp, good, evil, marker = real
    root = tmp_path / 'www'
    root.mkdir()
    for src, name in ((good, 'good-00000000.pth'), (evil, 'evil.pth')):
        (root / name).write_bytes(Path(src).read_bytes())
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'torch_home/hub'))
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', evil, marker
    finally:
        server.shutdown()
        server.server_close()
        torch.hub.set_dir(old_hub)


def test_urls_and_hub_cache_go_through_the_safe_loader(http_server, tmp_path,
                                                       monkeypatch):
    url, evil, marker = http_server
    model = torch.nn.Linear(1, 1)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(model, f'{url}/evil.pth')
    with pytest.raises(UnsafeCheckpointError):
        torch.hub.load_state_dict_from_url(f'{url}/evil.pth')
    # a resnet checkpoint into a Linear: the key-overlap check refuses it,
    # after the download went through the safe loader
    with pytest.raises(CheckpointMismatchError, match='shares 0 of 2'):
        load_checkpoint(torch.nn.Linear(1, 1), f'{url}/good-00000000.pth')
    monkeypatch.setenv('MMEXT_CHECKPOINT_MIN_KEY_OVERLAP', '0')
    good = load_checkpoint(
        torch.nn.Linear(1, 1), f'{url}/good-00000000.pth', strict=False)
    assert 'state_dict' in good
    # named schemes resolve to URLs, then the same loader
    monkeypatch.setattr(mme_checkpoint, 'get_external_models',
                        lambda: {'evil': f'{url}/evil.pth'})
    monkeypatch.setattr(mme_checkpoint, 'get_mmcls_models',
                        lambda: {'evil': f'{url}/evil.pth'})
    for name in ('open-mmlab://evil', 'openmmlab://evil', 'mmcls://evil'):
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(model, name)
    # a malicious file already in the hub cache under torchvision's name
    import torchvision
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / 'checkpoints' / Path(weights.url).name
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(evil.read_bytes())
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(model, 'torchvision://resnet18')
    with pytest.raises(UnsafeCheckpointError):
        weights.get_state_dict(progress=False)
    assert not marker.exists()


def test_test_tool_refuses_a_url(http_server, real, tmp_path):
    url, _, marker = http_server
    tmp = real[0]
    proc = run_tool([
        'tools/test.py', TINY, f'{url}/evil.pth', '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp}/data/tiny'
    ],
                    cwd=ROOT,
                    check=False,
                    env={'TORCH_HOME': str(tmp_path / 'th')})
    assert proc.returncode != 0
    assert 'refused' in proc.stderr.strip().splitlines()[-1]
    assert not marker.exists()


def test_damaged_files_give_one_line(real, tmp_path):
    """Every truncation point, empty, wrong-format files: one line each."""
    _, good, _, _ = real
    data = good.read_bytes()
    cuts = sorted({
        0, 1, 2, 10, 100,
        len(data) - 1,
        len(data) - 22, *np.linspace(3,
                                     len(data) - 2, 59).astype(int).tolist()
    })
    for cut in cuts:
        path = tmp_path / f'cut_{cut}.pth'
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptCheckpointError) as e:
            safe_torch_load(str(path))
        msg = str(e.value)
        assert len(msg.splitlines()) == 1 and path.name in msg, (cut, msg)
        path.unlink()
    wrong = {
        'image.pth': b'\x89PNG\r\n\x1a\n' + bytes(100),
        'text.pth': b'{"not": "a checkpoint"}',
        'npz.pth': b'PK\x03\x04' + bytes(60),
    }
    for name, content in wrong.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises((CorruptCheckpointError, UnsafeCheckpointError)) \
                as e:
            safe_torch_load(str(tmp_path / name))
        assert len(str(e.value).splitlines()) == 1 and name in str(e.value)
    np.savez(tmp_path / 'arrays.npz', a=np.ones(2))
    with pytest.raises(CorruptCheckpointError, match='arrays.npz'):
        safe_torch_load(str(tmp_path / 'arrays.npz'))
    with pytest.raises(CorruptCheckpointError, match='directory'):
        safe_torch_load(str(tmp_path))


def test_empty_last_checkpoint_fails_before_training(runs):
    runs = runs[0]
    proc = runs['last_checkpoint_empty']
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0
    assert 'last_checkpoint is empty' in last and '--resume' in last, last
    proc = runs['last_checkpoint_gone']
    assert 'gone.pth, which does not exist' in proc.stderr
