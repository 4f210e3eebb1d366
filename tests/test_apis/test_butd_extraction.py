# Copyright (c) mmext contributors. All rights reserved.
"""mmext.apis.butd_extraction: decoding in DataLoader workers gives the
in-process outputs, unreadable images are listed with workers too, the
decode budget binds worker processes, the fp16 / bf16 convolutions stay
within the documented deviation, and the old module path names the new."""
import multiprocessing
import os

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from mmext.apis.butd_decode import (DecodedImages, SharedDecodeBudget,
                                    decode_bytes_needed, decoded_inputs)
from mmext.apis.butd_extraction import (extract_regions, init_butd_detector,
                                        list_images, regions_record)
from mmext.models.detectors.butd.fuse import convs_to_half
from tests.test_apis.infer_workspaces import make_butd_workspace, noise_image

cv2 = pytest.importorskip('cv2')

SELECT = dict(min_boxes=3, max_boxes=8)


@pytest.fixture(scope='module')
def ws(tmp_path_factory):
    root = make_butd_workspace(tmp_path_factory.mktemp('butd_extraction'))
    images = root / 'images'
    for i in range(3, 6):
        noise_image(images / f'img{i}.png', (50 + 10 * i, 80), seed=i)
    # large enough that OpenCV resizes with its thread pool in this
    # process before the workers fork (cv2.setNumThreads in a forked
    # worker then hung)
    noise_image(images / 'img6.png', (600, 800), seed=6)
    (images / 'img1b_broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    (images / 'img3b_empty.png').write_bytes(b'')
    return root


@pytest.fixture(scope='module')
def model(ws):
    return init_butd_detector(
        str(ws / 'butd_tiny.py'), str(ws / 'butd_tiny.pth'))[0]


def _run(model, ws, out, workers, **kw):
    return extract_regions(
        model,
        list_images(str(ws / 'images')),
        str(out), ('npz', 'tsv'),
        SELECT,
        progress=False,
        workers=workers,
        **kw)


def test_workers_equal_in_process_and_list_unreadable(model, ws, tmp_path):
    """Workers decode ahead: the same npz arrays, TSV lines, id map and
    failure list as decoding in process; a corrupt and an empty image among
    good ones are listed and skipped, the workers go on."""
    here = _run(model, ws, tmp_path / 'w0', 0)
    there = _run(model, ws, tmp_path / 'w2', 2)
    assert here['done'] == there['done'] == 7
    assert [os.path.basename(p) for p, _ in there['failed']
            ] == ['img1b_broken.jpg', 'img3b_empty.png']
    assert here['failed'] == there['failed']
    assert 'empty file' in there['failed'][1][1]
    for name in ('regions_rank0.tsv', 'image_ids.csv', 'failed_rank0.txt'):
        assert (tmp_path / 'w0' / name).read_bytes() == (tmp_path / 'w2' /
                                                         name).read_bytes()
    npz = sorted(p.name for p in (tmp_path / 'w2').glob('*.npz'))
    assert npz == [f'img{i}.npz' for i in range(7)]
    for name in npz:
        a = np.load(tmp_path / 'w0' / name)
        b = np.load(tmp_path / 'w2' / name)
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # resume with workers: nothing left, the failures listed again
    again = _run(model, ws, tmp_path / 'w2', 2)
    assert (again['done'], again['skipped'], len(again['failed'])) == (0, 7, 2)


def test_decode_budget_binds_worker_processes(ws, tmp_path):
    """Two workers whose images each need more than half the budget decode
    one at a time (the shared peak never passes the budget); an image
    needing more than all of it is listed, not decoded."""
    paths = [str(p) for p in sorted((ws / 'images').glob('img?.png'))][:6]
    cfg = dict(target_size=96, max_size=160)
    needs = [decode_bytes_needed(open(p, 'rb').read(), cfg) for p in paths]
    h, w = cv2.imread(paths[0]).shape[:2]
    assert needs[0] > 15 * h * w
    budget = SharedDecodeBudget(max(needs) + min(needs) // 2)
    items = list(decoded_inputs(DecodedImages(paths, cfg, None, budget), 2))
    assert [it['path'] for it in items] == paths
    assert all(it['error'] is None for it in items)
    assert max(needs) <= budget.peak <= budget.max_bytes
    assert budget.used == 0
    small = SharedDecodeBudget(min(needs) - 1)
    item = DecodedImages(paths[:1], cfg, None, small)[0]
    assert 'over the decode budget' in item['error']
    assert '--decode-budget-mb' in item['error']


def test_shared_budget_counts_across_processes():
    budget = SharedDecodeBudget(100)
    ctx = multiprocessing.get_context()
    with budget.hold(60):
        proc = ctx.Process(target=_hold_briefly, args=(budget, 30))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        assert budget.used == 60 and budget.peak == 90


def _hold_briefly(budget, nbytes):
    with budget.hold(nbytes):
        pass


# --------------------------------------------------------- half precision
#: the documented deviation of the tiny model (configs/butd/README.md)
HALF_BOUNDS = dict(
    fp16=dict(feat_max=1e-3, top_class=0.95, proposals_kept=0.9),
    bf16=dict(feat_max=1e-2, top_class=0.95, proposals_kept=0.8))


def _best_iou(a, b):
    """Per box of ``a``: the best IoU with a box of ``b`` and its index."""
    if len(a) == 0 or len(b) == 0:
        return torch.zeros(len(a)), torch.full((len(a), ), -1)
    return box_iou(a, b).max(dim=1)


def precision_deviation(full, half, img, select_cfg=SELECT):
    """What fp16 / bf16 convolutions change on one image.

    Returns:
        dict: ``proposals_kept``: fraction of fp32 proposals with an
        IoU > 0.9 twin; on the fp32 proposals (rows pair up):
        ``feat_max`` / ``feat_mean`` pool5 difference relative to the
        largest fp32 value, ``prob_max`` largest cls_prob difference,
        ``top_class`` agreement of the arg-max class; end to end:
        ``boxes_kept`` fraction of selected fp32 regions with an IoU > 0.9
        twin among the selected half ones, ``selected_top_class`` of those
        whose twin has the same object class.
    """
    with torch.no_grad():
        x, scale, hw = full.preprocess_image(img)
        ref = full.predict_preprocessed(x, scale, hw)
        got = half.predict_preprocessed(x, scale, hw)
        same = half.forward_roi(
            half.backbone(x), ref['rois'] * scale, scale, hw)
    f, g = ref['features'], same['features']
    rel = (g - f).abs() / f.abs().max().clamp_min(1e-12)
    a = regions_record(ref, 'a', select_cfg)
    b = regions_record(got, 'b', select_cfg)
    iou, j = _best_iou(
        torch.from_numpy(a['boxes']), torch.from_numpy(b['boxes']))
    kept = iou > 0.9
    same_class = kept & torch.from_numpy(
        a['object_ids'] == b['object_ids'][j.clamp_min(0).numpy()])
    return dict(
        proposals_kept=float(
            (_best_iou(ref['rois'], got['rois'])[0] > 0.9).float().mean()),
        feat_max=float(rel.max()),
        feat_mean=float(rel.mean()),
        prob_max=float((same['cls_prob'] - ref['cls_prob']).abs().max()),
        top_class=float(
            (same['cls_prob'].argmax(1) == ref['cls_prob'].argmax(1)
             ).float().mean()),
        boxes_kept=float(kept.float().mean()),
        selected_top_class=float(same_class.float().mean()))


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_half_convs_on_cpu_within_documented_bound(ws, model, precision):
    half, _ = init_butd_detector(
        str(ws / 'butd_tiny.py'),
        str(ws / 'butd_tiny.pth'),
        precision=precision)
    conv = half.backbone.conv1
    assert conv.weight.dtype == {
        'bf16': torch.bfloat16,
        'fp16': torch.float16
    }[precision]
    assert half.roi_head.cls_score.weight.dtype == torch.float32
    img = cv2.imread(str(ws / 'images' / 'img1.png'))
    out = half.predict_image(img)
    for key in ('rois', 'features', 'cls_prob', 'attr_prob', 'cls_boxes'):
        assert out[key].dtype == torch.float32, key
    dev = precision_deviation(model, half, img)
    bound = HALF_BOUNDS[precision]
    assert dev['feat_max'] <= bound['feat_max'], dev
    assert dev['top_class'] >= bound['top_class'], dev
    assert dev['proposals_kept'] >= bound['proposals_kept'], dev


def test_half_needs_the_fused_model(ws):
    with pytest.raises(ValueError, match='needs the fused model'):
        init_butd_detector(
            str(ws / 'butd_tiny.py'), fuse=False, precision='fp16')
    model, _ = init_butd_detector(str(ws / 'butd_tiny.py'))
    with pytest.raises(ValueError, match='precision must be one of'):
        convs_to_half(model, 'fp8')
    convs_to_half(model, 'bf16')
    with pytest.raises(ValueError, match='already run in bf16'):
        convs_to_half(model, 'fp16')


def test_old_module_path_names_the_new():
    from mmext.datasets.region_tsv import tsv_image_id
    from mmext.models.detectors.butd import extract
    assert extract.tsv_image_id is tsv_image_id
    with pytest.raises(ImportError, match='mmext.apis.butd_extraction'):
        from mmext.models.detectors.butd.extract import \
            init_butd_detector  # noqa: F401
    with pytest.raises(AttributeError):
        extract.no_such_name


def test_inferencer_precision(ws):
    from mmext.apis import BUTDInferencer
    cfg, ckpt = str(ws / 'butd_tiny.py'), str(ws / 'butd_tiny.pth')
    inferencer = BUTDInferencer(cfg, ckpt, precision='bf16')
    assert inferencer.model.backbone.conv1.weight.dtype == torch.bfloat16
    res = inferencer(str(ws / 'images' / 'img0.png'))[0]
    assert 3 <= len(res['boxes']) <= 8
    with pytest.raises(ValueError, match='needs fuse=True'):
        BUTDInferencer(cfg, ckpt, fuse=False, precision='fp16')
