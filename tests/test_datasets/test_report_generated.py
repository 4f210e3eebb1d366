# Copyright (c) mmext contributors. All rights reserved.
"""The generated IU X-ray / MIMIC-CXR data: real layout, reports that the
labeler reads back, images that show the findings."""
import json

import numpy as np
from PIL import Image

from mmext.evaluation.chexpert import CATEGORIES, label_report
from mmext.testing import make_iu_xray, make_mimic_cxr

# generator finding -> CheXpert observation that its sentences mention
_TO_CHEXPERT = {
    'cardiomegaly': 'Cardiomegaly',
    'effusion': 'Pleural Effusion',
    'pneumothorax': 'Pneumothorax',
    'edema': 'Edema',
    'fracture': 'Fracture',
    'device': 'Support Devices'
}


def test_layouts_are_r2gen(tmp_path):
    iu = make_iu_xray(tmp_path / 'iu', n_train=3, n_val=2, n_test=1)
    ann = json.loads((iu / 'annotation.json').read_text())
    counts = {k: len(v) for k, v in ann.items()}
    assert counts == dict(train=3, val=2, test=1)
    e = ann['val'][0]
    assert e['image_path'] == [f"{e['id']}/0.png", f"{e['id']}/1.png"]
    assert e['split'] == 'val' and e['report'].strip()
    img = Image.open(iu / 'images' / e['image_path'][0])
    assert img.mode == 'L' and img.size == (64, 64)  # IU: grayscale PNG

    mimic = make_mimic_cxr(tmp_path / 'mimic', n_train=2, n_val=1, n_test=1)
    e = json.loads((mimic / 'annotation.json').read_text())['test'][0]
    subject, study = e['subject_id'], e['study_id']
    assert e['image_path'] == [
        f"p{str(subject)[:2]}/p{subject}/s{study}/{e['id']}.jpg"
    ]
    assert (mimic / 'images' / e['image_path'][0]).is_file()
    # deterministic
    again = make_iu_xray(tmp_path / 'iu2', n_train=3, n_val=2, n_test=1)
    assert (again / 'annotation.json').read_text() == \
        (iu / 'annotation.json').read_text()


def test_reports_state_the_findings(tmp_path):
    root = make_iu_xray(tmp_path, n_train=60, n_val=0, n_test=0, size=32)
    ann = json.loads((root / 'annotation.json').read_text())['train']
    idx = {c: i for i, c in enumerate(CATEGORIES)}
    for e in ann:
        labels = label_report(e['report'])
        for finding, obs in _TO_CHEXPERT.items():
            # present = positive or hedged ("suggests a small effusion")
            assert (labels[idx[obs]] in (1, -1)) == \
                (finding in e['findings']), \
                (e['report'], finding)


def test_images_show_cardiomegaly_and_effusion(tmp_path):
    root = make_iu_xray(tmp_path, n_train=60, n_val=0, n_test=0, size=64)
    ann = json.loads((root / 'annotation.json').read_text())['train']

    def frontal(e):
        return np.asarray(
            Image.open(root / 'images' / e['image_path'][0]),
            dtype=float) / 255

    # left of a normal heart shadow, inside an enlarged one
    def heart_side(e):
        return frontal(e)[40:44, 22:26].mean()

    # the left costophrenic region of the lung
    def bases(e):
        return frontal(e)[49:52, 15:23].mean()

    for finding, score in (('cardiomegaly', heart_side), ('effusion', bases)):
        pos = [score(e) for e in ann if finding in e['findings']]
        neg = [score(e) for e in ann if finding not in e['findings']]
        assert pos and neg
        assert min(pos) > max(neg), finding  # separable by one threshold
