# Copyright (c) mmext contributors. All rights reserved.
"""Generated IU X-ray / MIMIC-CXR data sets in R2Gen's exact on-disk layout.

No chest X-ray data can be downloaded here, so tests, demos and benchmarks
write small studies whose radiology-style reports are drawn from a finding
set that also shapes the image (a larger heart shadow for cardiomegaly, a
bright costophrenic angle for effusion, a dark rim for pneumothorax, a bright
patch for an opacity ...): a tiny report generator can learn something.

Layouts (R2Gen's ``annotation.json``)::

    iu_xray/annotation.json     {"train": [...], "val": [...], "test": [...]}
            images/CXR<n>_IM-<m>/0.png, 1.png        (frontal, lateral)
    mimic_cxr/annotation.json   entries also carry study_id / subject_id
            images/p1x/p1xxxxxxx/s5xxxxxxx/<dicom_id>.jpg
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    'make_iu_xray', 'make_mimic_cxr', 'sample_findings', 'write_report',
    'chest_image', 'FINDINGS'
]

#: findings a generated study can have, with their prevalence
FINDINGS = {
    'cardiomegaly': 0.25,
    'effusion': 0.2,
    'pneumothorax': 0.1,
    'opacity': 0.2,
    'edema': 0.1,
    'atelectasis': 0.15,
    'fracture': 0.05,
    'device': 0.15,
}

_NORMAL = {
    'heart': [
        'The heart is normal in size.',
        'Heart size is normal.',
        'The cardiomediastinal silhouette is within normal limits.',
        'Normal heart size.',
    ],
    'lungs': [
        'The lungs are clear.',
        'Lungs are clear bilaterally.',
        'No focal consolidation.',
        'There is no focal airspace disease.',
    ],
    'pleura': [
        'No pleural effusion or pneumothorax.',
        'There is no pneumothorax or pleural effusion.',
        'No pneumothorax. No pleural effusion.',
    ],
    'bones': [
        'No acute bony abnormality.',
        'The osseous structures are intact.',
        'Visualized osseous structures are unremarkable.',
    ],
}

_ABNORMAL = {
    'cardiomegaly': [
        'The heart is enlarged.',
        'There is moderate cardiomegaly.',
        'Heart size is mildly enlarged.',
    ],
    'effusion': [
        'There is a small left pleural effusion.',
        'Small bilateral pleural effusions are present.',
        'Blunting of the right costophrenic angle suggests a small effusion.',
    ],
    'pneumothorax': [
        'There is a small right apical pneumothorax.',
        'A left pneumothorax is present.',
    ],
    'opacity': [
        'There is a focal opacity in the right lower lobe.',
        'Patchy airspace opacity in the left base may represent pneumonia.',
        'Right upper lobe consolidation is seen.',
    ],
    'edema': [
        'There is mild pulmonary edema.',
        'Interstitial markings are increased, consistent with mild edema.',
    ],
    'atelectasis': [
        'Mild bibasilar atelectasis.',
        'Streaky left basilar opacity likely reflects atelectasis.',
    ],
    'fracture': [
        'There is an old healed right rib fracture.',
        'A healed fracture of the left clavicle is noted.',
    ],
    'device': [
        'A right-sided central venous catheter terminates in the svc.',
        'A left-sided pacemaker is in place.',
        'Endotracheal tube tip is 4 cm above the carina.',
    ],
}

_IMPRESSION_NORMAL = [
    'No acute cardiopulmonary abnormality.',
    'No acute cardiopulmonary process.',
    'Normal chest x-ray.',
]


def sample_findings(rng):
    """A set of finding names drawn with :data:`FINDINGS` prevalences."""
    return {k for k, p in FINDINGS.items() if rng.random() < p}


def write_report(findings, rng, style='iu_xray'):
    """A real-style report for ``findings`` (negations for what is absent).

    IU X-ray reports get anonymisation ``XXXX`` tokens and list-numbered
    impressions now and then; MIMIC-CXR reports get line breaks and ``___``
    de-identification placeholders (the R2Gen cleaners handle both).
    """
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    sents = []
    sents.append(
        pick(_ABNORMAL['cardiomegaly']) if 'cardiomegaly' in
        findings else pick(_NORMAL['heart']))
    lung = [f for f in ('opacity', 'edema', 'atelectasis') if f in findings]
    sents += [pick(_ABNORMAL[f]) for f in lung] or [pick(_NORMAL['lungs'])]
    pleura = [f for f in ('effusion', 'pneumothorax') if f in findings]
    if pleura:
        sents += [pick(_ABNORMAL[f]) for f in pleura]
        if 'pneumothorax' not in findings:
            sents.append('No pneumothorax.')
        if 'effusion' not in findings:
            sents.append('No pleural effusion.')
    else:
        sents.append(pick(_NORMAL['pleura']))
    sents.append(
        pick(_ABNORMAL['fracture']) if 'fracture' in
        findings else pick(_NORMAL['bones']))
    if 'device' in findings:
        sents.append(pick(_ABNORMAL['device']))
    if style == 'iu_xray':
        if rng.random() < 0.3:
            sents.insert(1, 'XXXX XXXX are normal.')
        if not findings and rng.random() < 0.4:
            sents.append('1. ' + pick(_IMPRESSION_NORMAL) +
                         ' 2. Stable appearance.')
        return ' '.join(sents)
    # MIMIC-CXR: wrapped lines, de-identified dates
    if rng.random() < 0.3:
        sents.insert(0, 'Comparison is made to prior study from ___.')
    text = ' '.join(sents)
    words, lines, line = text.split(' '), [], []
    for w in words:
        line.append(w)
        if len(' '.join(line)) > 60:
            lines.append(' '.join(line))
            line = []
    lines.append(' '.join(line))
    return '\n '.join(lines)


def chest_image(findings, rng, size=64, view='frontal'):
    """A grayscale chest-like image (PIL 'L') whose content shows
    ``findings``: dark lung fields, a bright mediastinum whose width grows
    with cardiomegaly, bright bases for effusion, a black rim for
    pneumothorax, a bright patch for opacity/edema/atelectasis, a bright
    line for a device. The lateral view is a squeezed variant."""
    y, x = np.mgrid[:size, :size] / size
    img = 0.55 + rng.normal(0, 0.04, (size, size))
    lungs = (((x - 0.3) / 0.17)**2 + ((y - 0.5) / 0.33)**2 < 1) | \
        (((x - 0.7) / 0.17)**2 + ((y - 0.5) / 0.33)**2 < 1)
    if view == 'lateral':
        lungs = ((x - 0.5) / 0.3)**2 + ((y - 0.5) / 0.35)**2 < 1
    img[lungs] = 0.2 + rng.normal(0, 0.04, lungs.sum())
    heart_w = 0.2 if 'cardiomegaly' in findings else 0.11
    heart = ((x - 0.52) / heart_w)**2 + ((y - 0.65) / 0.14)**2 < 1
    img[heart] = 0.8
    if 'effusion' in findings:
        img[(y > 0.75) & lungs] = 0.75
    if 'pneumothorax' in findings:
        img[(y < 0.35) & lungs & (x > 0.5)] = 0.02
    # blobs placed clear of the heart and the bases, so each finding has a
    # region of its own
    for name, (cx, cy) in (('opacity', (0.72, 0.35)), ('edema', (0.3, 0.4)),
                           ('atelectasis', (0.2, 0.62))):
        if name in findings:
            blob = ((x - cx)**2 + (y - cy)**2) < 0.008
            img[blob] = 0.65
    if 'fracture' in findings:
        img[(np.abs(y - 0.3) < 0.015) & (x < 0.25)] = 1.0
    if 'device' in findings:
        img[(np.abs(x - 0.45) < 0.01) & (y < 0.55)] = 1.0
    img = np.clip(img, 0, 1)
    return Image.fromarray((img * 255).astype(np.uint8), mode='L')


def _splits(n_train, n_val, n_test):
    return [('train', n_train), ('val', n_val), ('test', n_test)]


def make_iu_xray(root, n_train=24, n_val=6, n_test=6, size=64, seed=0):
    """Write an IU X-ray data set in R2Gen's layout under ``root``.

    Args:
        root (str | Path): Output folder (created).
        n_train, n_val, n_test (int): Studies per split.
        size (int): Image side in pixels.
        seed (int): Random seed (the output is deterministic).

    Returns:
        Path: ``root``. ``annotation.json`` entries look like
        ``{"id": "CXR1_IM-0001", "report": "...", "image_path":
        ["CXR1_IM-0001/0.png", "CXR1_IM-0001/1.png"], "split": "train"}``;
        each entry additionally keeps its ground-truth ``findings`` list
        (ignored by the loaders) for tests.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann, n = {}, 0
    for split, count in _splits(n_train, n_val, n_test):
        ann[split] = []
        for _ in range(count):
            n += 1
            sid = f'CXR{n}_IM-{1000 + n:04d}'
            findings = sample_findings(rng)
            folder = root / 'images' / sid
            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for v, view in enumerate(('frontal', 'lateral')):
                img = chest_image(findings, rng, size, view)
                img.save(folder / f'{v}.png')
                paths.append(f'{sid}/{v}.png')
            ann[split].append(
                dict(
                    id=sid,
                    report=write_report(findings, rng, 'iu_xray'),
                    image_path=paths,
                    split=split,
                    findings=sorted(findings)))
    (root / 'annotation.json').write_text(json.dumps(ann, indent=1))
    return root


def make_mimic_cxr(root, n_train=24, n_val=6, n_test=6, size=64, seed=0):
    """Write a MIMIC-CXR data set in R2Gen's layout under ``root``.

    Entries: ``{"id": <dicom_id>, "study_id": int, "subject_id": int,
    "report": "...", "image_path": ["p10/p10000001/s50000001/<dicom>.jpg"],
    "split": "train"}`` (JPEG images, one view used). Arguments as
    :func:`make_iu_xray`. Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed + 1)
    ann, n = {}, 0
    for split, count in _splits(n_train, n_val, n_test):
        ann[split] = []
        for _ in range(count):
            n += 1
            subject, study = 10000000 + n, 50000000 + n
            dicom = '-'.join(f'{rng.integers(16**8):08x}' for _ in range(5))
            findings = sample_findings(rng)
            rel = f'p{str(subject)[:2]}/p{subject}/s{study}/{dicom}.jpg'
            (root / 'images' / rel).parent.mkdir(parents=True, exist_ok=True)
            chest_image(findings, rng, size).save(
                root / 'images' / rel, quality=95)
            ann[split].append(
                dict(
                    id=dicom,
                    study_id=study,
                    subject_id=subject,
                    report=write_report(findings, rng, 'mimic_cxr'),
                    image_path=[rel],
                    split=split,
                    findings=sorted(findings)))
    (root / 'annotation.json').write_text(json.dumps(ann, indent=1))
    return root
